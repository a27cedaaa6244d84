"""What committing embeddings to cache.sqlite batch by batch costs, against encoding the batch.

    python benchmarks/cache_commit.py [--sizes 16 64 128 256] [--repeats 5] [--no-encode]

A build commits each batch of ``qa.pipeline.EMBED_BATCH`` passages to the
embedding cache as soon as it is encoded, so a killed build resumes. This
times ``EmbeddingCache.put`` (one transaction) for batches of 384-dimension
vectors in a cache beside the repository (same disk as the default index),
with the product's ``synchronous = NORMAL`` and, for comparison, SQLite's
default ``FULL`` (an fsync per commit); then, unless ``--no-encode``, the
bundled model encoding one batch of seed passages (default chunking, the
backend ``QA_BACKEND`` selects). The last column is the commit as a share of
the encoding it protects.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.index.store import EmbeddingCache

ROOT = Path(__file__).resolve().parents[1]
DIM = 384


def commit_ms(folder: Path, size: int, repeats: int, synchronous: str) -> float:
    """Median ms of one ``put`` of ``size`` new vectors into a cache that already holds a few batches."""
    cache = EmbeddingCache(folder)
    cache._con.execute(f"PRAGMA synchronous = {synchronous}")
    rng = np.random.default_rng(size)
    times = []
    for r in range(repeats + 2):
        texts = [f"{synchronous}-{size}-{r}-{i}" for i in range(size)]
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        start = time.perf_counter()
        cache.put("bench", texts, vectors)
        times.append((time.perf_counter() - start) * 1000)
    cache.close()
    return statistics.median(times[2:])  # the first two warm the file up


def seed_texts() -> list[str]:
    from qa import chunk
    from qa.config import Settings
    from qa.pipeline import index_text, load_documents

    s = Settings.load()
    docs, _ = load_documents([ROOT / "seeds"])
    return [index_text(d, p) for d in docs
            for p in chunk.chunk_document(d, size=s.chunk_size, max_size=s.chunk_max, overlap=s.chunk_overlap)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-encode", action="store_true", help="only time the commits")
    args = parser.parse_args()

    encoder = texts = None
    if not args.no_encode:
        from qa.config import Settings
        from qa.embed import load_encoder

        encoder = load_encoder(Settings.load())
        texts = seed_texts()
        encoder.encode_passages(texts[:4])  # warm up
        print(f"encoder: {encoder.name} ({encoder.backend}); seed passages: {len(texts)},"
              f" mean {statistics.mean(map(len, texts)):.0f} characters; load average {os.getloadavg()[0]:.1f}")
    print("| batch | commit ms (NORMAL) | commit ms (FULL) | encode s | commit / encode |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix="cache-commit-", dir=ROOT))
        try:
            normal = commit_ms(folder / "normal", size, args.repeats, "NORMAL")
            full = commit_ms(folder / "full", size, args.repeats, "FULL")
        finally:
            shutil.rmtree(folder)
        if encoder is None or texts is None:
            print(f"| {size} | {normal:.1f} | {full:.1f} | | |")
            continue
        batch = (texts * (size // len(texts) + 1))[:size]
        start = time.perf_counter()
        encoder.encode_passages(batch)
        encode = time.perf_counter() - start
        print(f"| {size} | {normal:.1f} | {full:.1f} | {encode:.1f} | {normal / 1000 / encode:.2%} |")


if __name__ == "__main__":
    main()
