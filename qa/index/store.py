"""The passage and document store: one SQLite file shared by index generations.

Why generations instead of one copy of the store per snapshot: at 100,000
passages the store is ~400 MB, and copying it for every added document costs
more than the whole "add one document in 2 s" budget. Instead every document
row records the generation that added it and the generation that removed it;
a reader pinned to generation ``g`` sees exactly the rows with
``added <= g < removed``. A builder writes generation ``g + 1`` rows inside
one transaction, invisible to readers of ``g`` until ``CURRENT`` names
``g + 1``. Rows of a build that died are dropped by ``discard_after``; rows no
reader can see any more are dropped by ``collect``.

Why ``documents_live`` and ``documents_removed``: every build reads the live
documents' ids and hashes and counts them, and undoes or collects rows by
generation. Without them each of those scans the documents table, text and
all (about 0.8 s at 100,000 passages, ten times that at a million); with
them each is a search in an index of a few columns (under 0.05 s). A store
written before them gets them from the first build that opens it (about 0.3 s
per 100,000 passages, once).

Passage text is not stored twice: a passage is ``document.text[start:end]``.
Vectors and jieba tokens are kept so the FAISS and BM25 indexes can be rebuilt
from the store alone.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..types import DocInfo, Document, Passage, text_hash
from .common import join_tokens, split_tokens

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_key INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    added INTEGER NOT NULL,
    removed INTEGER,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source TEXT,
    date TEXT,
    url TEXT
);
CREATE INDEX IF NOT EXISTS documents_doc_id ON documents(doc_id);
CREATE INDEX IF NOT EXISTS documents_live ON documents(added, removed, doc_id, content_hash);
CREATE INDEX IF NOT EXISTS documents_removed ON documents(removed);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_key INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    heading TEXT,
    tokens TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_doc_key ON passages(doc_key);
"""

VISIBLE = "d.added <= :g AND (d.removed IS NULL OR d.removed > :g)"
_VISIBLE_PASSAGES = f"JOIN documents d ON d.doc_key = p.doc_key WHERE {VISIBLE}"
_DOC_COLUMNS = "d.doc_key, d.doc_id, d.path, d.title, d.text, d.content_hash, d.source, d.date, d.url"
_BATCH = 500  # SQLite's default host-parameter limit is 999 on old builds


class Store:
    """A connection to one store file; thread-safe (one lock around the connection).

    The web app serves queries from worker threads, so the connection is
    opened with ``check_same_thread=False`` and every use holds ``_lock``.
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._docs: dict[int, Document] = {}  # doc_key -> Document; rows never change once written
        self._con = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        if readonly:
            self._con.execute("PRAGMA query_only = 1")
        else:
            self._con.execute("PRAGMA journal_mode = WAL")
            self._con.executescript(SCHEMA)
            _drop_text_hash(self._con)
        self._con.execute("PRAGMA foreign_keys = OFF")

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- reading at a generation --------------------------------------------
    def check(self, gen: int) -> int:
        """Number of documents visible at ``gen``; fails fast on a garbled file."""
        with self._lock:
            return int(self._con.execute(f"SELECT count(*) FROM documents d WHERE {VISIBLE}", {"g": gen}).fetchone()[0])

    def passage_count(self, gen: int) -> int:
        sql = f"SELECT count(*) FROM passages p JOIN documents d ON d.doc_key = p.doc_key WHERE {VISIBLE}"
        with self._lock:
            return int(self._con.execute(sql, {"g": gen}).fetchone()[0])

    def documents(self, gen: int) -> list[DocInfo]:
        sql = (
            "SELECT d.doc_id, d.title, d.source, d.date, d.url, d.path, "
            "(SELECT count(*) FROM passages p WHERE p.doc_key = d.doc_key), d.content_hash "
            f"FROM documents d WHERE {VISIBLE} ORDER BY d.doc_id"
        )
        with self._lock:
            return [DocInfo(*row) for row in self._con.execute(sql, {"g": gen})]

    def document(self, doc_id: str, gen: int) -> Document | None:
        sql = f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.doc_id = :id AND {VISIBLE}"
        with self._lock:
            row = self._con.execute(sql, {"id": doc_id, "g": gen}).fetchone()
            return None if row is None else self._document(row)

    def existing(self, gen: int) -> dict[str, str]:
        sql = f"SELECT d.doc_id, d.content_hash FROM documents d WHERE {VISIBLE}"
        with self._lock:
            return dict(self._con.execute(sql, {"g": gen}).fetchall())

    def passages(self, ids: Sequence[int]) -> list[tuple[Passage, Document]]:
        """Passages by id, in the order asked; ``KeyError`` names an unknown id.

        Ids come from a snapshot's FAISS/BM25 files, which only hold ids visible
        at that snapshot's generation, so no generation filter is needed here.
        """
        found: dict[int, tuple] = {}
        with self._lock:
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id, doc_key, ordinal, start, end, heading FROM passages WHERE id IN ({marks})"
                for row in self._con.execute(sql, [int(i) for i in chunk]):
                    found[row[0]] = row
            docs = self._documents_by_key({row[1] for row in found.values()})
            out = []
            for pid in ids:
                row = found.get(int(pid))
                if row is None:
                    raise KeyError(int(pid))
                doc = docs[row[1]]
                start, end = row[3], row[4]
                out.append((Passage(doc.doc_id, row[2], doc.text[start:end], start, end, row[5]), doc))
            return out

    def passage_ids(self, gen: int) -> np.ndarray:
        sql = f"SELECT p.id FROM passages p JOIN documents d ON d.doc_key = p.doc_key WHERE {VISIBLE} ORDER BY p.id"
        with self._lock:
            rows = self._con.execute(sql, {"g": gen}).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def vectors(self, gen: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """All (ids, vectors) visible at ``gen``: what a FAISS rebuild needs."""
        sql = f"SELECT p.id, p.vector FROM passages p {_VISIBLE_PASSAGES} ORDER BY p.id"
        with self._lock:
            rows = self._con.execute(sql, {"g": gen}).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vecs

    def tokens(self, gen: int) -> Iterator[tuple[int, list[str]]]:
        """All (id, tokens) visible at ``gen``: what a BM25 rebuild needs."""
        sql = f"SELECT p.id, p.tokens FROM passages p {_VISIBLE_PASSAGES} ORDER BY p.id"
        with self._lock:
            rows = self._con.execute(sql, {"g": gen}).fetchall()
        for pid, joined in rows:
            yield pid, split_tokens(joined)

    # -- writing generation ``gen`` (the builder's, not yet live) -----------
    def begin(self) -> None:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        with self._lock:
            if self._con.in_transaction:
                self._con.execute("COMMIT")

    def rollback(self) -> None:
        with self._lock:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")

    def document_path(self, doc_id: str, gen: int) -> str | None:
        sql = f"SELECT d.path FROM documents d WHERE d.doc_id = :id AND {VISIBLE}"
        with self._lock:
            row = self._con.execute(sql, {"id": doc_id, "g": gen}).fetchone()
        return None if row is None else row[0]

    def remove_document(self, doc_id: str, gen: int) -> list[int]:
        """Hide ``doc_id`` from ``gen`` on; returns the ids of its passages."""
        with self._lock:
            keys = [r[0] for r in self._con.execute(
                f"SELECT d.doc_key FROM documents d WHERE d.doc_id = :id AND {VISIBLE}", {"id": doc_id, "g": gen})]
            ids: list[int] = []
            for key in keys:
                if self._con.execute("SELECT added FROM documents WHERE doc_key = ?", (key,)).fetchone()[0] == gen:
                    ids += self._drop(key)  # added by this very build: no reader has seen it
                else:
                    self._con.execute("UPDATE documents SET removed = ? WHERE doc_key = ?", (gen, key))
                    ids += [r[0] for r in self._con.execute("SELECT id FROM passages WHERE doc_key = ?", (key,))]
            return ids

    def add_document(
        self, doc: Document, passages: Sequence[Passage], vectors: np.ndarray, tokens: Sequence[Sequence[str]], gen: int
    ) -> list[int]:
        """Insert a document visible from ``gen`` on; returns its new passage ids."""
        with self._lock:
            cur = self._con.execute(
                "INSERT INTO documents (doc_id, added, path, title, text, content_hash, source, date, url)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc.doc_id, gen, doc.path, doc.title, doc.text, doc.content_hash, doc.source, doc.date, doc.url),
            )
            key = cur.lastrowid
            ids = []
            for p, vec, toks in zip(passages, vectors, tokens, strict=True):
                cur = self._con.execute(
                    "INSERT INTO passages (doc_key, ordinal, start, end, heading, tokens, vector)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (key, p.ordinal, p.start, p.end, p.heading,
                     join_tokens(toks),
                     np.ascontiguousarray(vec, dtype=np.float32).tobytes()),
                )
                rowid = cur.lastrowid
                assert rowid is not None  # an INSERT always sets it
                ids.append(rowid)
            return ids

    def discard_after(self, gen: int) -> None:
        """Undo whatever a dead build wrote for generations after ``gen``."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            for (key,) in self._con.execute("SELECT doc_key FROM documents WHERE added > ?", (gen,)).fetchall():
                self._drop(key)
            self._con.execute("UPDATE documents SET removed = NULL WHERE removed > ?", (gen,))
            self._con.execute("COMMIT")

    def collect(self, gen: int) -> None:
        """Drop rows removed at or before ``gen``: invisible to every kept snapshot."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            for (key,) in self._con.execute("SELECT doc_key FROM documents WHERE removed <= ?", (gen,)).fetchall():
                self._drop(key)
            self._con.execute("COMMIT")

    # -- helpers -------------------------------------------------------------
    def _drop(self, key: int) -> list[int]:
        ids = [r[0] for r in self._con.execute("SELECT id FROM passages WHERE doc_key = ?", (key,))]
        self._con.execute("DELETE FROM passages WHERE doc_key = ?", (key,))
        self._con.execute("DELETE FROM documents WHERE doc_key = ?", (key,))
        self._docs.pop(key, None)
        return ids

    def _documents_by_key(self, keys: set[int]) -> dict[int, Document]:
        """The documents of ``keys``: those not kept in ``_docs`` read in one query, not one query each
        (a question's 15 passages come from up to 15 articles)."""
        docs = {key: doc for key in keys if (doc := self._docs.get(key)) is not None}
        todo = [key for key in keys if key not in docs]
        for chunk in _chunks(todo):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {_DOC_COLUMNS} FROM documents d WHERE d.doc_key IN ({marks})"
            for row in self._con.execute(sql, chunk).fetchall():
                docs[row[0]] = self._document(row)
        missing = keys - docs.keys()
        if missing:
            raise KeyError(min(missing))
        return docs

    def _document(self, row: tuple) -> Document:
        key, doc_id, path, title, text, content_hash, source, date, url = row
        doc = Document(doc_id=doc_id, path=path, title=title, text=text, content_hash=content_hash,
                       source=source, date=date, url=url)
        if len(self._docs) > 256:  # bounded: a 10 MB article must not pin memory forever
            self._docs.clear()
        self._docs[key] = doc
        return doc


def _drop_text_hash(con: sqlite3.Connection) -> None:
    """Stores written before this version kept a sha256 per passage that nothing read.

    It is dropped once, by the first build that opens such a store, because its
    NOT NULL constraint would refuse the rows this version writes. Readers never
    selected it, so snapshots of the old version keep answering.
    """
    if any(row[1] == "text_hash" for row in con.execute("PRAGMA table_info(passages)")):
        con.execute("ALTER TABLE passages DROP COLUMN text_hash")


def _cache_key(text: str) -> bytes:
    return bytes.fromhex(text_hash(text))


def _chunks(items: list, size: int = _BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class EmbeddingCache:
    """Passage vectors by (encoder identity, sha256 of the text), shared by all snapshots.

    Re-chunking or re-adding unchanged text then costs a lookup instead of an
    encoder call, and a build that was killed resumes: each ``put`` is its own
    transaction, committed before it returns. The cache is only a speed-up: a
    damaged file is replaced by an empty one rather than failing the build,
    and commits are not fsynced (``synchronous = NORMAL`` in WAL mode: a
    SIGKILL loses nothing, a power cut may lose the last batches, never the
    file's consistency).
    """

    def __init__(self, index_dir: Path) -> None:
        path = Path(index_dir) / "cache.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._con = self._connect(path)
        except sqlite3.DatabaseError:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._con = self._connect(path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        con = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute(
            "CREATE TABLE IF NOT EXISTS vectors (identity TEXT NOT NULL, hash BLOB NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (identity, hash)) WITHOUT ROWID"
        )
        con.commit()
        return con

    def get(self, identity: str, texts: Sequence[str]) -> list[np.ndarray | None]:
        """One vector per text (a copy), or None where this encoder has not seen the text."""
        keys = [_cache_key(t) for t in texts]
        found: dict[bytes, bytes] = {}
        with self._lock:
            for chunk in _chunks(list(set(keys))):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT hash, vector FROM vectors WHERE identity = ? AND hash IN ({marks})"
                found.update(self._con.execute(sql, [identity, *chunk]).fetchall())
        return [None if found.get(k) is None else np.frombuffer(found[k], dtype=np.float32).copy() for k in keys]

    def put(self, identity: str, texts: Sequence[str], vectors: np.ndarray | Sequence[np.ndarray]) -> None:
        rows = [
            (identity, _cache_key(t), np.ascontiguousarray(v, dtype=np.float32).tobytes())
            for t, v in zip(texts, vectors, strict=True)
        ]
        with self._lock:
            self._con.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
            self._con.commit()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
