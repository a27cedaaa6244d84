"""What a rebuild of an unchanged folder costs, per file, against a stat per file.

    python benchmarks/rebuild_unchanged.py [--files 10000] [--repeats 3]

Builds a folder of ``--files`` tiny articles (a few Chinese sentences each,
dated an hour back as files that have sat on disk are) into a fresh folder
index with a tiny real model (a static per-character embedding, as the tests
use: encoding is not what is measured), then times ``qa build`` of the same
folder again, in process: nothing changed, so no file should be read. For
scale it also times discovery alone (listing the folder) and one ``os.stat``
per file. Prints the CPU (``lscpu``) the figures were taken on.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "交警大队党总支现有党员五十四人。",
    "该党总支每周一集中学习，开展主题党课教育。",
    "民警在路口执勤，提醒行人注意交通安全。",
    "大队联合社区开展安全宣传，发放资料三百余份。",
    "今年以来辖区道路交通事故同比下降。",
]


def tiny_model(folder: Path) -> Path:
    """A sentence-transformers model of per-character vectors (as tests/conftest.py builds)."""
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    chars = sorted({c for s in SENTENCES for c in s} | set("0123456789第篇"))
    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    weights = np.random.default_rng(7).normal(size=(len(vocab), 32)).astype(np.float32)
    path = folder / "tiny-chars"
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu").save(str(path))
    return path


def make_folder(folder: Path, count: int) -> None:
    rng = random.Random(22)
    when = time.time() - 3600
    for i in range(count):
        sub = folder / f"{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"article-{i:05d}.txt"
        body = "".join(rng.sample(SENTENCES, 3))
        path.write_text(f"第{i}篇\n\n{body}第{i}篇完。\n", encoding="utf-8")
        os.utime(path, (when, when))


def cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    get = lambda key: fields.get(key, "?").strip()  # noqa: E731
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in get("Flags").split()]
    return f"{get('Model name')}, {get('CPU(s)')} CPUs, flags {' '.join(flags) or 'none of avx2/avx512'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from qa import load
    from qa.config import Settings
    from qa.embed import load_encoder
    from qa.pipeline import Bot
    from qa.present.report import summary

    work = Path(tempfile.mkdtemp(prefix="qa-rebuild-"))
    try:
        folder = work / "articles"
        make_folder(folder, args.files)
        settings = Settings.load(index_dir=work / "index", model=str(tiny_model(work)))
        bot = Bot(settings, encoder=load_encoder(settings))
        start = time.perf_counter()
        first = bot.build([folder])
        built = time.perf_counter() - start
        assert len(first.added) == args.files, summary(first)[:500]

        reads = 0
        real_read = load.read

        def counting_read(*a, **k):
            nonlocal reads
            reads += 1
            return real_read(*a, **k)

        load.read = counting_read  # type: ignore[assignment]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            again = bot.build([folder])
            times.append(time.perf_counter() - start)
            assert len(again.unchanged) == args.files and not again.embedded, summary(again)[:500]
        load.read = real_read  # type: ignore[assignment]

        start = time.perf_counter()
        files, _ = load.discover([folder])
        listed = time.perf_counter() - start
        start = time.perf_counter()
        for path in files:
            os.stat(path)
        stats = time.perf_counter() - start

        rebuild = statistics.median(times)
        n = args.files
        print(f"CPU: {cpu()}")
        print(f"first build of {n:,} files: {built:.1f} s")
        print(
            f"unchanged rebuild of {n:,} files: {rebuild:.2f} s median of {args.repeats} "
            f"({rebuild / n * 1e6:.0f} µs per file), {reads} files read"
        )
        print(f"  of which listing the folder (discover): {listed:.2f} s; one os.stat per file: {stats:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
