"""CPU time of tokenising passages: the cut-down tokenizer per text, per group, and the full tokenizer.

    python benchmarks/tokenizer_groups.py [--groups 16 64] [--rounds 5] [--baseline REV] [--encode]

A build tokenises every passage with the cut-down tokenizer of
``qa.question_tokenizer`` (the full one holds about 280 MB). This times, in
interleaved rounds in one process, tokenising the seeds' passages and those
of the CMRC trial documents (default chunking, the passage prompt before
each, as ``OpenVINOEncoder`` does): one cut-down tokenizer per text, one per
group of ``--groups`` texts (in the order a build sends them: longest first),
and the full tokenizer. ``--baseline REV`` also times the per-text tokenizer
of ``qa/question_tokenizer.py`` at that git revision (its pieces are stored
in a temporary folder). Every mode's ids are checked to be the full
tokenizer's. ``--encode`` then times ``OpenVINOEncoder.encode_passages`` on
the seeds' passages (the bundled model, tokenising and the network) with
each tokenizer swapped in: the full one, the cut-down one (groups of
``qa.embed.TOKEN_GROUP``) and, with ``--baseline``, the old one per text.
Figures are medians of CPU seconds (``time.process_time``, the whole process).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from qa import chunk, clean, convert, load
from qa.config import Settings
from qa.pipeline import index_text
from qa.question_tokenizer import QuestionTokenizer

ROOT = Path(__file__).resolve().parents[1]
SETS = {"seeds": ROOT / "seeds", "cmrc": ROOT / "eval" / "cmrc2018-trial" / "docs"}


def passages(folder: Path, settings: Settings) -> list[str]:
    """What the encoder gets for each passage of the folder's files, longest first as ``Indexer._embed`` sends."""
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        doc = clean.to_document(load.read(path))
        found = chunk.chunk_document(doc, size=settings.chunk_size, max_size=settings.chunk_max,
                                     overlap=settings.chunk_overlap)
        out += [index_text(doc, p) for p in found]
    return sorted(set(out), key=lambda t: (-len(t), t))


def baseline(rev: str, tokenizer_json: Path, folder: Path) -> QuestionTokenizer:
    """The cut-down tokenizer as it was at ``rev``, its pieces stored under ``folder``."""
    source = subprocess.run(["git", "show", f"{rev}:qa/question_tokenizer.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    (folder / "baseline_tokenizer.py").write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_tokenizer", folder / "baseline_tokenizer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QuestionTokenizer(tokenizer_json, folder, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="git revision whose per-text tokenizer is timed too")
    parser.add_argument("--encode", action="store_true", help="also time encoding the seeds with each tokenizer")
    args = parser.parse_args()
    from tokenizers import Tokenizer

    settings = Settings.load()
    tokenizer_json = convert.install_bundled(settings.cache_dir) / "tokenizer.json"
    prompt = "passage: "
    texts = {name: [prompt + t for t in passages(folder, settings)] for name, folder in SETS.items()}
    full = Tokenizer.from_file(str(tokenizer_json))
    full.enable_truncation(max_length=512)
    full.no_padding()
    cut = QuestionTokenizer(tokenizer_json, settings.cache_dir, 512)

    def grouped(size: int) -> Callable[[list[str]], list[list[int]]]:
        return lambda ts: [ids for s in range(0, len(ts), size) for ids in cut.encode_batch(ts[s : s + size])]

    modes: dict[str, Callable[[list[str]], list[list[int]]]] = {
        "full tokenizer": lambda ts: [full.encode(t).ids for t in ts],
        "cut-down, per text": lambda ts: [cut.encode(t) for t in ts],
        **{f"cut-down, groups of {n}": grouped(n) for n in args.groups},
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            old = baseline(args.baseline, tokenizer_json, Path(tmp))
            modes[f"cut-down, per text, at {args.baseline}"] = lambda ts: [old.encode(t) for t in ts]
        expected = {name: [full.encode(t).ids for t in ts] for name, ts in texts.items()}
        for mode, run in modes.items():
            for name, ts in texts.items():
                assert run(ts) == expected[name], f"{mode} differs from the full tokenizer on {name}"
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for mode, run in modes.items():
                for name, ts in texts.items():
                    start = time.process_time()
                    run(ts)
                    times.setdefault((mode, name), []).append(time.process_time() - start)
        encoding = encode_times(texts["seeds"], full, cut, old if args.baseline else None, args.rounds) \
            if args.encode else {}
    counts = " · ".join(f"{name} {len(ts)} passages, {sum(map(len, ts)) / len(ts):.0f} characters on average"
                        for name, ts in texts.items())
    print(f"{counts}; median of {args.rounds} interleaved rounds, CPU seconds (ms per passage); ids identical")
    print("| mode | " + " | ".join(texts) + " |")
    print("| --- |" + " ---: |" * len(texts))
    for mode in modes:
        cells = []
        for name, ts in texts.items():
            median = statistics.median(times[(mode, name)])
            cells.append(f"{median:.3f} s ({median / len(ts) * 1000:.2f} ms)")
        print(f"| {mode} | " + " | ".join(cells) + " |")
    for mode, seconds in encoding.items():
        print(f"encoding the seeds' {len(texts['seeds'])} passages, {mode}: {seconds:.2f} CPU s")
    sys.stdout.flush()


class _PerText:
    """A tokenizer with ``encode`` only, as ``OpenVINOEncoder`` takes one: each text alone."""

    def __init__(self, encode: Callable[[str], list[int]]) -> None:
        self.encode = encode

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]


def encode_times(texts: list[str], full: object, cut: QuestionTokenizer, old: QuestionTokenizer | None,
                 rounds: int) -> dict[str, float]:
    """Median CPU seconds of ``encode_passages`` over ``texts`` (prompt stripped: the encoder adds it)."""
    from qa.embed import OpenVINOEncoder, load_encoder

    encoder = load_encoder(Settings.load().with_(model="", backend="auto"))
    assert isinstance(encoder, OpenVINOEncoder), "the bundled model on OpenVINO is what this measures"
    bare = [t.removeprefix(encoder.prompts["passage"]) for t in texts]
    tokenizers = {"full tokenizer": _PerText(lambda t: full.encode(t).ids),  # type: ignore[attr-defined]
                  "cut-down, grouped": cut}
    if old is not None:
        tokenizers["cut-down, per text, baseline"] = _PerText(old.encode)
    encoder.encode_passages(bare)  # first inferences out of the way
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for mode, tokenizer in tokenizers.items():
            encoder.tokenizer = tokenizer
            start = time.process_time()
            encoder.encode_passages(bare)
            times.setdefault(mode, []).append(time.process_time() - start)
    return {mode: statistics.median(ts) for mode, ts in times.items()}


if __name__ == "__main__":
    main()
