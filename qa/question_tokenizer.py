"""The cut-down tokenizer: the model's Unigram tokenizer, cut down to the pieces a text (or group) can use.

Why: building the bundled model's tokenizer (``Tokenizer.from_file`` over
250,002 pieces) took 0.9-1.4 s, the largest single step of a one-off
``qa ask``, for a question of twenty characters, and holds about 280 MB,
too much for a build's memory. A Unigram tokenizer's Viterbi lattice only
ever holds pieces that occur in the (normalised, pre-tokenised) text, plus
an unknown-piece node whose score is the vocabulary's lowest score minus a
fixed penalty. So a tokenizer whose vocabulary is every piece occurring in
the text, the specials and one piece with the lowest score builds the same
lattice and gives the same pieces; their ids are mapped back to the full
vocabulary's. Pieces that occur in other texts change nothing either, so
one tokenizer serves a group of passages (``encode_batch``): the union of
their pieces. ``tests/test_question_tokenizer.py`` compares per text,
grouped and full on every evaluation question, passages and edge cases.

The pieces live in SQLite with every prefix of every piece, so finding a
text's pieces walks its substrings by length and asks only for those whose
one-shorter prefix was found: one query per length, about an eighth of all
substrings up to the longest piece (asking for them all took 9.4 ms a
passage). The file is written once from ``tokenizer.json`` and named after
that file's size and modification time. Any surprise (another tokenizer
type, an unreadable file) raises, and the caller falls back to the full
tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

FORMAT = 2  # 2: prefixes of pieces stored too (id NULL)
_META = "\u2581"  # Metaspace's stand-in for a space
_LOOKUP = 500  # substrings per SQL query (below SQLite's variable limit)


def vocab_path(tokenizer_json: Path, cache_dir: Path) -> Path:
    """Where the pieces of ``tokenizer_json`` are kept: keyed by the file's path, size and time."""
    st = Path(tokenizer_json).stat()
    key = f"{FORMAT}|{Path(tokenizer_json).resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return Path(cache_dir) / "vocab" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.sqlite"


def _write(tokenizer_json: Path, target: Path) -> None:
    """Split ``tokenizer.json`` into its pieces (a table) and everything else (the template)."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "Unigram" or model.get("byte_fallback") or spec.get("truncation") or spec.get("padding"):
        raise ValueError("not a plain Unigram tokenizer")
    vocab = model["vocab"]
    post = spec.get("post_processor") or {}
    if post.get("type") != "TemplateProcessing":
        raise ValueError(f"post-processor {post.get('type')} is not handled")
    # the pieces every question's vocabulary keeps: those the template and the added tokens name, the
    # unknown piece, and one with the lowest score (the unknown node's score depends on it)
    lowest = min(range(len(vocab)), key=lambda i: vocab[i][1])
    kept = sorted({t["id"] for t in spec["added_tokens"]} | {model["unk_id"], lowest}
                  | {i for s in post["special_tokens"].values() for i in s["ids"]})
    new = {old: n for n, old in enumerate(kept)}
    for token in spec["added_tokens"]:
        token["id"] = new[token["id"]]
    for special in post["special_tokens"].values():
        special["ids"] = [new[i] for i in special["ids"]]
    model["unk_id"] = new[model["unk_id"]]
    model["vocab"] = [vocab[i] for i in kept]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        with sqlite3.connect(tmp) as db:
            # every piece (a repeated piece keeps its first id, as the full tokenizer's lookup does), then every
            # prefix of a piece that is not one itself, with no id: what the walk in ``_pieces`` extends
            db.execute("CREATE TABLE piece (text TEXT PRIMARY KEY, id INTEGER, score REAL) WITHOUT ROWID")
            db.executemany("INSERT OR IGNORE INTO piece VALUES (?, ?, ?)",
                           ((p, i, s) for i, (p, s) in enumerate(vocab)))
            db.executemany("INSERT OR IGNORE INTO piece VALUES (?, NULL, NULL)",
                           ((p[:n],) for p, _ in vocab for n in range(1, len(p))))
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            db.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("template", json.dumps(spec, ensure_ascii=False)), ("kept", json.dumps(kept)),
            ])
        db.close()
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def prepare(tokenizer_json: Path, cache_dir: Path) -> Path:
    """The stored pieces of ``tokenizer_json``, written now if they are not yet (a few seconds, once)."""
    path = vocab_path(tokenizer_json, cache_dir)
    if not path.is_file():
        _write(tokenizer_json, path)
    return path


class QuestionTokenizer:
    """``encode(text)`` and ``encode_batch(texts)`` give the ids the full tokenizer gives (truncated at
    ``max_length``).

    ``encode_batch`` builds one tokenizer for the whole group: a passage of
    about 350 characters costs 3.2 ms of CPU alone and 1.8 ms in a group of
    64 (``benchmarks/tokenizer_groups.py``), against 0.6 ms for the full
    tokenizer; a question goes alone."""

    def __init__(self, tokenizer_json: Path, cache_dir: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        path = prepare(tokenizer_json, cache_dir)
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        template = json.loads(meta["template"])
        self._kept: list[int] = json.loads(meta["kept"])
        self._kept_pieces = [tuple(p) for p in template["model"]["vocab"]]
        self._unk = template["model"]["unk_id"]
        self._specials = [t["content"] for t in template["added_tokens"]]
        self._tokenizer: Any = Tokenizer.from_str(json.dumps(template))
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()

    def _views(self, text: str) -> set[str]:
        """The text as the Unigram model sees it: normalised, spaces as the metaspace, a metaspace before.

        The text is normalised whole and, in case it holds a special token the
        tokenizer splits out first, also piece by piece around the specials: a
        superset of what the model sees does no harm, a piece left out would."""
        normalizer = self._tokenizer.normalizer
        parts = [text]
        for special in self._specials:
            parts = [p for part in parts for p in part.split(special)]
        return {_META + normalizer.normalize_str(part).replace(" ", _META) for part in {text, *parts}}

    def _lookup(self, texts: Sequence[str]) -> list[tuple[str, int | None, float | None]]:
        found: list[tuple[str, int | None, float | None]] = []
        for start in range(0, len(texts), _LOOKUP):
            chunk = texts[start : start + _LOOKUP]
            found += self._db.execute(
                f"SELECT text, id, score FROM piece WHERE text IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
        return found

    def _pieces(self, views: Iterable[str]) -> dict[str, tuple[int, float]]:
        """Every piece occurring in ``views``: substrings walked by length, each one extended only while it is
        the prefix of some piece (no piece can start with a substring that is not)."""
        pieces: dict[str, tuple[int, float]] = {}
        live = [(view, start) for view in views for start in range(len(view))]
        length = 1
        while live:
            live = [(view, start) for view, start in live if start + length <= len(view)]
            grams = [view[start : start + length] for view, start in live]
            rows = self._lookup(list(set(grams)))
            pieces.update((text, (i, score)) for text, i, score in rows if i is not None and score is not None)
            prefixes = {text for text, _, _ in rows}
            live = [at for at, gram in zip(live, grams, strict=True) if gram in prefixes]
            length += 1
        return pieces

    def encode(self, text: str) -> list[int]:
        """Not thread-safe (the model is swapped per call): the caller holds a lock."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text, through one tokenizer holding the pieces of them all. Not thread-safe either."""
        from tokenizers import models

        if not texts:
            return []
        kept = set(self._kept)
        views = {view for text in texts for view in self._views(text)}
        extra = sorted((i, p, s) for p, (i, s) in self._pieces(views).items() if i not in kept)
        ids = self._kept + [i for i, _, _ in extra]
        vocab: Sequence[tuple[str, float]] = self._kept_pieces + [(p, s) for _, p, s in extra]
        self._tokenizer.model = models.Unigram(list(vocab), unk_id=self._unk, byte_fallback=False)
        return [[ids[i] for i in self._tokenizer.encode(text).ids] for text in texts]
