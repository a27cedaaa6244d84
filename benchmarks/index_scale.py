"""Index storage at scale: search latency, build and add costs, cold start, memory.

    python benchmarks/index_scale.py [--passages 100000] [--sweep]

Vectors are generated (dimension 384, clustered around random "topics" the
way real embedding sets are, so an approximate index is tested fairly) and so
are the token lists (a Zipf-distributed vocabulary of two-character words);
every store, FAISS and BM25 step runs for real through qa.index. No embedding
model is involved: this measures the storage layer alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa.index.local import LocalWriter, open_index
from qa.index.keyword import KeywordIndex
from qa.bench.synthetic import PER_DOC, clustered_corpus, make_doc, stats, unit
from qa.bench.synthetic import timed as run_timed
from qa.index.vectors import VectorIndex, nlist_for

DIM = 384


def timed(fn, repeat: int) -> tuple[float, float]:
    """p50, p95 in milliseconds."""
    figures = stats(run_timed(fn, repeat))
    return figures["p50"], figures["p95"]


def cold_start(index_dir: Path, query: list[float], tokens: list[str]) -> dict:
    """A new process: import, open the index, answer one dense and one keyword query."""
    code = f"""
import time, json; t0 = time.perf_counter()
import numpy as np
from qa.index.local import open_index
index = open_index({str(index_dir)!r}); t1 = time.perf_counter()
hits = index.search_dense(np.array({query!r}, dtype=np.float32), 50) + index.search_keyword({tokens!r}, 50)
index.passages([h[0] for h in hits[:10]]); t2 = time.perf_counter()
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]  # ru_maxrss survives exec
print(json.dumps({{"open": t1 - t0, "first": t2 - t0, "rss": int(hwm)}}))
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    result["process"] = time.perf_counter() - start
    return result


def sweep(vectors: np.ndarray, queries: np.ndarray) -> list[tuple]:
    rows = []
    for n in (10_000, 25_000, 50_000, 100_000, 200_000):
        data = (
            vectors[:n]
            if n <= len(vectors)
            else unit(
                np.concatenate(
                    [
                        vectors,
                        vectors[: n - len(vectors)]
                        + 0.05 * np.random.default_rng(1).standard_normal((n - len(vectors), DIM)),
                    ]
                )
            )
        )
        ids = np.arange(n, dtype=np.int64)
        flat = VectorIndex.build(ids, data, DIM, kind="flat")
        start = time.perf_counter()
        ivf = VectorIndex.build(ids, data, DIM, kind=f"ivf{nlist_for(n)}")
        build_s = time.perf_counter() - start
        recall = np.mean(
            [len({i for i, _ in ivf.search(q, 10)} & {i for i, _ in flat.search(q, 10)}) / 10 for q in queries[:100]]
        )
        rows.append((n, *timed(lambda i, f=flat: f.search(queries[i % len(queries)], 50), 60),
                     *timed(lambda i, v=ivf: v.search(queries[i % len(queries)], 50), 60), recall, build_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--sweep", action="store_true", help="also time exact vs IVF at 10k..200k")
    parser.add_argument("--keep", type=Path, help="build the index here and keep it")
    args = parser.parse_args()
    n = args.passages
    rows: list[tuple[str, str]] = []

    def row(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<48} {value}", flush=True)

    start = time.perf_counter()
    docs, vectors, tokens = clustered_corpus(n + PER_DOC, DIM)  # the last document is the one added later
    extra_doc, extra_vec, extra_tok = docs.pop(), vectors[n:], tokens[n:]
    print(f"generated {n} passages in {time.perf_counter() - start:.1f} s")
    root = args.keep or Path(tempfile.mkdtemp(prefix="qa-bench-"))
    index_dir = root / "index"
    manifest = {"encoder": "generated", "dim": DIM}

    start = time.perf_counter()
    with LocalWriter(index_dir, fresh=True) as builder:
        for d, (doc, passages) in enumerate(docs):
            s = slice(d * PER_DOC, d * PER_DOC + len(passages))
            builder.add_document(doc, passages, vectors[s], tokens[s])
        builder.commit(manifest)
    row("full build through LocalWriter (no embedding)", f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    KeywordIndex.build(range(n), tokens[:n])
    row("  of which BM25 build from token lists", f"{time.perf_counter() - start:.1f} s")

    rng = np.random.default_rng(7)
    picks = rng.integers(0, n, 200)
    queries = unit(vectors[picks] + 0.3 * rng.standard_normal((200, DIM)) / np.sqrt(DIM))
    token_queries = [list(rng.choice(tokens[i], size=min(6, len(tokens[i])), replace=False)) for i in picks]

    start = time.perf_counter()
    index = open_index(index_dir)
    row("open_index in a warm process", f"{(time.perf_counter() - start) * 1000:.0f} ms")
    row("index type at this size", index.manifest["vectors"]["kind"])
    row("LocalReader.search_dense k=50 p50/p95",
        "%.2f / %.2f ms" % timed(lambda i: index.search_dense(queries[i], 50), 200))
    flat = VectorIndex.build(np.arange(n), vectors[:n], DIM, kind="flat")
    row("plain exact FAISS (flat) k=50 p50/p95",
        "%.2f / %.2f ms" % timed(lambda i, f=flat: f.search(queries[i], 50), 200))
    if index.manifest["vectors"]["kind"] != "flat":
        recall = np.mean(
            [
                len({i for i, _ in index.search_dense(q, 10)} & {i + 1 for i, _ in flat.search(q, 10)}) / 10
                for q in queries
            ]
        )
        row("IVF recall@10 against exact", f"{recall:.3f}")
    del flat
    row(
        "LocalReader.search_keyword k=50 p50/p95",
        "%.2f / %.2f ms" % timed(lambda i: index.search_keyword(token_queries[i], 50), 200),
    )
    ids = [pid for pid, _ in index.search_dense(queries[0], 50)]
    row(
        "LocalReader.passages(10 ids) p50/p95",
        "%.2f / %.2f ms" % timed(lambda i: index.passages(ids[i % 40 : i % 40 + 10]), 200),
    )

    def retrieval(i: int) -> None:
        hits = index.search_dense(queries[i], 50) + index.search_keyword(token_queries[i], 50)
        index.passages(list(dict.fromkeys(pid for pid, _ in hits))[:15])

    row("dense + keyword + 15 passages p50/p95", "%.2f / %.2f ms" % timed(retrieval, 200))
    index.close()

    for label, change in (("add one document (10 passages)", "add"), ("replace one document", "replace"),
                          ("remove one document", "remove")):
        start = time.perf_counter()
        with LocalWriter(index_dir) as builder:
            if change == "add":
                builder.add_document(*extra_doc, extra_vec, extra_tok)
            elif change == "replace":
                builder.add_document(
                    *make_doc(docs[0][0].doc_id, ["".join(t) + "。" for t in tokens[1:3]]), vectors[1:3], tokens[1:3]
                )
            else:
                builder.remove_document(docs[1][0].doc_id)
            builder.commit(manifest)
        row(f"{label} to {n} via LocalWriter", f"{time.perf_counter() - start:.2f} s")

    cold = cold_start(index_dir, queries[0].tolist(), token_queries[0])
    row("cold process: import + open_index", f"{cold['open']:.2f} s")
    row("cold process: + first dense/keyword/lookup", f"{cold['first']:.2f} s (process wall {cold['process']:.2f} s)")
    row("peak RSS of that reader process", f"{cold['rss'] / 1024:.0f} MiB")
    row(
        "peak RSS of this benchmark (data + builds)",
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
    )
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
    row("index size on disk", f"{size / 2**20:.0f} MiB")
    if args.sweep:
        print("\nexact vs IVF (nprobe from qa.index.vectors), k=50, one thread:")
        print(f"  {'n':>8} {'flat p50':>9} {'flat p95':>9} {'ivf p50':>8} {'ivf p95':>8}"
              f" {'recall@10':>9} {'ivf build':>9}")
        for n_, fp50, fp95, ip50, ip95, rec, b in sweep(vectors[:n], queries):
            print(f"  {n_:>8} {fp50:>8.2f}  {fp95:>8.2f}  {ip50:>7.2f}  {ip95:>7.2f}  {rec:>9.3f} {b:>8.1f}s")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
