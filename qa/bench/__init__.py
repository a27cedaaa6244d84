"""``qa bench``: speed and memory, measured side by side with the plain alternatives.

Why side by side: this machine is shared and noisy, so an absolute figure
alone means little; hybrid retrieval is also timed against plain exact FAISS
and plain BM25 over the same passages in the same run, and our encoder
against sentence-transformers alone on the same passages and threads.

The collection of N passages is generated from the seeds (see
``synthetic.py``) with generated vectors of the active model's dimension;
every BM25, FAISS, store and fusion step runs for real. It is built once
into ``<cache>/bench/`` and reused while N, the model and the chunking stay
the same. Subprocess figures (cold start, web start) re-run the real
commands. ``report`` is plain JSON-able data; ``format_report`` prints it.

Only public interfaces are used: the pipeline's ``Asker`` and ``Indexer``
and the index interface (``qa.index``). The plain baselines are built from
the generated vectors and tokens themselves, never from the index's files.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import retrieve, segment
from ..config import Settings
from ..index import connect
from ..index.keyword import KeywordIndex
from ..index.vectors import VectorIndex
from ..types import Document, PassageEncoder, text_hash
from . import coldstart, synthetic
from .synthetic import stats, timed

Log = Callable[[str], None]
ROUNDS = 200  # retrieval timings per collection
UNSEEN = 200  # questions asked once each, for the first-time figure
ASKS = 30  # end-to-end questions per collection
RETRIEVAL_TARGET_AT = 100_000  # passages: the retrieval p95 target (8 ms) is set at this size


def run(settings: Settings, n_passages: int, log: Log = print, first_build: bool = False) -> dict:
    """All figures as a dict (see ``format_report`` for their meaning).

    ``first_build``: also time ``qa build`` of the seeds with an empty model cache, as on a new
    machine (the model is converted, exported to OpenVINO and its precision measured: minutes)."""
    from ..pipeline import Encoders, Indexer, load_documents

    started = time.perf_counter()
    from ..precision import read_cpu

    cpu = read_cpu()
    report: dict = {"n": n_passages, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                    "cpu": {"model": cpu.model, "flags": cpu.shown(), "native": cpu.native()}}
    milvus = settings if settings.milvus_uri else None  # then Milvus is measured beside the folder index
    settings = settings.with_(milvus_uri="")
    encoders = Encoders(settings)
    indexer = Indexer(settings, encoders=encoders)  # for the manifest: which model, which chunking
    log("loading the embedding model")
    t = time.perf_counter()
    encoder = encoders.full()
    report["model"] = {"name": encoder.name, "dim": encoder.dim, "backend": getattr(encoder, "backend", "?"),
                       "load_s": round(time.perf_counter() - t, 2)}
    docs, _ = load_documents([Path(settings.seeds_dir)])
    plans = indexer.plan(docs)
    texts = [t for _, _, doc_texts in plans for t in doc_texts]
    log(f"encoder throughput on {len(texts)} seed passages")
    load = os.getloadavg()[0]
    report["encoder"], seed_vectors = _encoder(encoder, texts, settings)
    report["encoder"]["load"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    pool = synthetic.sentence_pool(docs, [p for _, passages, _ in plans for p in passages])
    questions = synthetic.queries(pool)
    report["encoder"]["query"] = stats(timed(lambda i: encoder.encode_queries([questions[i % len(questions)]]), 30))
    qvecs = encoder.encode_queries(questions)
    # questions each asked once, as a user's are: none of them is among the repeated ones
    repeated = set(questions)
    unseen = [t for t in dict.fromkeys(synthetic.queries(pool, count=UNSEEN, seed=2)) if t not in repeated]
    unseen_vecs = encoder.encode_queries(unseen)

    root = Path(settings.cache_dir) / "bench"
    folder = lambda name: settings.with_(index_dir=root / name)  # noqa: E731

    def served(name: str) -> Settings:
        assert milvus is not None
        return milvus.with_(index_dir=root / f"milvus-{name}", milvus_collection="bench_" + name.replace("-", "_"))

    seeds = _seed_index(indexer, folder, texts, seed_vectors)
    log(f"retrieval at the seeds' size ({len(texts)} passages)")
    plain = _plain(seed_vectors, [segment.tokenize(t) for t in texts])
    report["seeds"] = _collection(_asker(seeds, encoder), questions, qvecs, plain)
    if milvus:
        report["milvus"] = {"uri": milvus.milvus_uri}
        seeds_m = _seed_index(indexer, served, texts, seed_vectors)
        log("the same on Milvus")
        report["milvus"]["seeds"] = _collection(_asker(seeds_m, encoder), questions, qvecs, plain)
    log(f"collection of {n_passages} generated passages")
    big, report["generate"] = _big_index(indexer, folder, pool, seed_vectors, n_passages, log)
    log(f"retrieval at {n_passages} passages")
    plain = _plain_generated(pool, seed_vectors, n_passages)
    report["big"] = _collection(_asker(big, encoder), questions, qvecs, plain, (unseen, unseen_vecs))
    if milvus:
        log(f"the same {n_passages} passages into Milvus")
        big_m, report["milvus"]["generate"] = _big_index(indexer, served, pool, seed_vectors, n_passages, log)
        log(f"retrieval at {n_passages} passages on Milvus")
        report["milvus"]["big"] = _collection(_asker(big_m, encoder), questions, qvecs, plain, (unseen, unseen_vecs))
    del plain
    log("adding one document")
    report["add"] = _add_one(big, encoder, docs)
    seeds_dir, big_dir = seeds.index_dir, big.index_dir
    log("cold starts (qa ask in a new process)")
    report["cold"] = {"seeds": coldstart.ask(settings, seeds_dir, questions, 5),
                      "big": coldstart.ask(settings, big_dir, questions, 3),
                      "steps": coldstart.steps(settings, seeds_dir, questions[0])}
    log("qa build of the seeds into a fresh folder (peak memory)")
    report["build"] = coldstart.build(settings, Path(settings.seeds_dir).resolve())
    if first_build:
        log("qa build of the seeds with an empty model cache too (a new machine's first build)")
        with tempfile.TemporaryDirectory(prefix="qa-bench-cache-") as empty:
            report["build_first"] = coldstart.build(settings, Path(settings.seeds_dir).resolve(), Path(empty))
    if milvus:
        log("adding one document and cold starts on Milvus")
        report["milvus"]["add"] = _add_one(big_m, encoder, docs)
        report["milvus"]["cold"] = {"seeds": coldstart.ask(seeds_m, seeds_m.index_dir, questions, 5),
                                    "big": coldstart.ask(big_m, big_m.index_dir, questions, 3)}
    log("web app start to first answer")
    report["web"] = coldstart.serve(settings, seeds_dir, questions[0])
    report["rss_mib"] = {"ask_big": report["cold"]["big"]["rss_mib"],
                         "bench": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    report["load_after"] = os.getloadavg()[0]
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["targets"] = targets(report)
    return report


# -- encoder ---------------------------------------------------------------------------
PLAIN = "sentence-transformers alone (torch)"


def _encoder(encoder, texts: list[str], settings: Settings, rounds: int = 3) -> tuple[dict, np.ndarray]:
    """Passages/second through ``SentenceEncoder`` at the precision chosen for this CPU, at each other
    precision it could run (f32, and bf16/int8 where native), and through sentence-transformers
    alone (its torch model, ``encode`` with its defaults), on the same passages in one process.

    The rows are timed in interleaved rounds (order reversed every other round) and the ratio
    is the median of per-round ratios, so a noisy machine slows every row alike.
    """
    from sentence_transformers import SentenceTransformer

    from ..embed import load_encoder
    from ..precision import candidates, read_cpu

    chosen = f"ours, {getattr(encoder, 'precision', 'f32')} (chosen)"
    encoders = {chosen: encoder}
    if getattr(encoder, "backend", "") == "openvino":
        for name in ("f32", *candidates(read_cpu())[0]):
            if name != encoder.precision:
                encoders[f"ours, {name}"] = load_encoder(settings.with_(precision=name))
    plain_model = SentenceTransformer(str(encoder.location), device="cpu", local_files_only=True)
    prompt = getattr(encoder, "passage_prompt", None)
    runs: dict[str, Callable[[list[str]], np.ndarray]] = {label: e.encode_passages for label, e in encoders.items()}
    runs[PLAIN] = lambda ts: plain_model.encode(ts, prompt_name=prompt, normalize_embeddings=True,
                                                show_progress_bar=False)
    for run_ in runs.values():
        run_(texts[:8])  # warm-up: first calls allocate
    seconds: dict[str, list[float]] = {label: [] for label in runs}
    out: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for label in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            vectors = runs[label](texts)
            seconds[label].append(time.perf_counter() - start)
            out.setdefault(label, vectors)
    def ratio(slow: str, fast: str) -> float:
        return round(float(np.median([x / y for x, y in zip(seconds[slow], seconds[fast], strict=True)])), 3)

    decision = getattr(encoder, "decision", None)
    figures = {"passages": len(texts), "rounds": rounds, "precision": decision.summary() if decision else "f32",
               "rows": {label: {**_rates(len(texts), s), "vs_plain": ratio(PLAIN, label),
                                "min_cos_vs_chosen": round(float((out[label] * out[chosen]).sum(1).min()), 5)}
                        for label, s in seconds.items()},
               "ours_per_s": _rates(len(texts), seconds[chosen]), "plain_per_s": _rates(len(texts), seconds[PLAIN]),
               "ratio": ratio(PLAIN, chosen)}
    return figures, np.ascontiguousarray(out[chosen], dtype=np.float32)


def _rates(count: int, seconds: list[float]) -> dict:
    per_s = sorted(count / s for s in seconds)
    return {"p50": round(float(np.median(per_s)), 2), "worst": round(per_s[0], 2), "n": len(per_s)}


# -- indexes ---------------------------------------------------------------------------
def _key(*parts: object) -> str:
    return text_hash(json.dumps(parts, sort_keys=True, default=str))[:12]


def _asker(settings: Settings, encoder: PassageEncoder) -> Any:
    from ..pipeline import Asker, Encoders

    return Asker(settings, encoders=Encoders(settings, encoder))


def _seed_index(indexer: Any, place: Callable[[str], Settings], texts: list[str], vectors: np.ndarray) -> Settings:
    """The seeds indexed with the active model (their vectors are already known: no second encoding).

    ``place`` gives the settings of an index by name: a folder, or a Milvus collection."""
    from ..pipeline import Indexer

    seeds = Path(indexer.settings.seeds_dir).resolve()
    # keyed by the seeds' own folder too: the same articles from another checkout have other
    # document ids, and a shared index would keep both copies (documents from elsewhere are kept)
    settings = place(f"seeds-{_key(indexer.manifest(), str(seeds))}")
    backend = connect(settings)
    with backend.vector_cache() as cache:
        cache.put(indexer.encoder.identity, texts, vectors)
    Indexer(settings, backend, indexer.encoders).build([seeds])
    return settings


def _big_index(indexer: Any, place: Callable[[str], Settings], pool: synthetic.SentencePool,
               seed_vectors: np.ndarray, n: int, log: Log) -> tuple[Settings, dict]:
    """The generated collection, written through the index interface once and reused while its key holds."""
    from ..errors import QAError

    settings = place(f"n{n}-{_key(indexer.manifest(), n, synthetic.VERSION)}")
    backend = connect(settings)
    try:
        reader = backend.open()
        try:
            if reader.passage_count() == n:
                return settings, {"cached": True, "kind": reader.describe()["dense"]}
        finally:
            reader.close()
    except QAError:
        pass
    start = time.perf_counter()
    with backend.writer(fresh=True) as writer:
        for d, (doc, passages, vectors, tokens) in enumerate(synthetic.seed_collection(pool, seed_vectors, n)):
            writer.add_document(doc, passages, vectors, tokens)
            if d and d % max(1, n // synthetic.PER_DOC // 5) == 0:
                log(f"  {d * synthetic.PER_DOC} passages stored")
        stored = time.perf_counter()
        log("  writing the dense and keyword indexes")
        writer.commit(indexer.manifest())
    done = time.perf_counter()
    reader = backend.open()
    kind = reader.describe()["dense"]
    reader.close()
    return settings, {"cached": False, "store_s": round(stored - start, 1), "commit_s": round(done - stored, 1),
                      "kind": kind}


# -- retrieval -------------------------------------------------------------------------
Plain = tuple[VectorIndex, KeywordIndex]


def _plain(vectors: np.ndarray, tokens: Iterable[Sequence[str]]) -> Plain:
    """Exact FAISS (IndexFlatIP) and BM25 over the same vectors and tokens, without the hybrid's layers."""
    ids = np.arange(len(vectors), dtype=np.int64)
    return VectorIndex.build(ids, vectors, vectors.shape[1], kind="flat"), KeywordIndex.build(ids, tokens)


def _plain_generated(pool: synthetic.SentencePool, seed_vectors: np.ndarray, n: int) -> Plain:
    """``_plain`` over the generated collection, generated again (it is deterministic) in one pass."""
    vectors = np.empty((n, seed_vectors.shape[1]), np.float32)

    def tokens() -> Iterator[list[str]]:
        row = 0
        for _, _, vecs, toks in synthetic.seed_collection(pool, seed_vectors, n):
            vectors[row : row + len(vecs)] = vecs
            row += len(vecs)
            yield from toks

    keyword = KeywordIndex.build(np.arange(n, dtype=np.int64), tokens())  # fills ``vectors`` on the way
    return VectorIndex.build(np.arange(n, dtype=np.int64), vectors, vectors.shape[1], kind="flat"), keyword


def _collection(asker: Any, questions: list[str], qvecs: np.ndarray, plain: Plain,
                unseen: tuple[list[str], np.ndarray] | None = None) -> dict:
    """Retrieval with the query already encoded (``Asker.candidates`` then ``Asker.answer``),
    its two searches alone, the plain alternatives, and ``Asker.ask`` end to end.

    The repeated questions are each asked once before the ``ROUNDS`` timed calls, so every timed
    call is a repeat (warm caches: the steady state, comparable across runs). A question asked the
    first time costs more (its words' postings and documents read, its analysis not cached):
    ``unseen`` questions, each asked once after that warm-up (the index already open), give that
    figure (``first_time``)."""
    index = asker.index()
    q = len(questions)
    parts: dict[str, list[float]] = {"dense": [], "keyword": [], "fusion": [], "total": [], "total_cpu": []}
    abstained = 0

    def retrieval(i: int) -> None:
        nonlocal abstained
        question = questions[i % q]
        c0, t0 = time.process_time(), time.perf_counter()
        found = asker.candidates(question, qvec=qvecs[i % q])
        t1 = time.perf_counter()
        abstained += asker.answer(found).abstained
        t2, c2 = time.perf_counter(), time.process_time()
        index.search_dense(qvecs[i % q], retrieve.CANDIDATES)
        t3 = time.perf_counter()
        index.search_keyword(segment.tokenize(found.query), retrieve.CANDIDATES)
        t4 = time.perf_counter()
        for name, seconds in (("dense", t3 - t2), ("keyword", t4 - t3), ("fusion", t2 - t1), ("total", t2 - t0),
                              ("total_cpu", c2 - c0)):
            parts[name].append(seconds)

    timed(retrieval, q)  # warm-up: each repeated question once (the index opened, pages of its files read)
    first_time: dict[str, list[float]] = {"wall": [], "cpu": []}
    if unseen:
        texts, vecs = unseen
        for question, qvec in zip(texts, vecs, strict=True):
            c0, t0 = time.process_time(), time.perf_counter()
            asker.answer(asker.candidates(question, qvec=qvec))
            first_time["wall"].append(time.perf_counter() - t0)
            first_time["cpu"].append(time.process_time() - c0)
    parts = {k: [] for k in parts}
    abstained = 0
    load = os.getloadavg()[0]
    timed(retrieval, ROUNDS)
    flat, plain_bm25 = plain
    faiss_times = timed(lambda i: flat.search(qvecs[i % q], retrieve.CANDIDATES), ROUNDS)
    bm25_times = timed(lambda i: plain_bm25.search(segment.tokenize(questions[i % q]), retrieve.CANDIDATES), ROUNDS)
    asks = timed(lambda i: asker.ask(questions[i % q]), ASKS)
    out: dict[str, Any] = {name: stats(seconds) for name, seconds in parts.items()}
    out.update(passages=index.passage_count(), kind=index.describe()["dense"],
               abstained=round(abstained / ROUNDS, 2), plain_faiss=stats(faiss_times), plain_bm25=stats(bm25_times),
               ask=stats(asks), load=[round(load, 2), round(os.getloadavg()[0], 2)])
    out["ratio"] = round(out["total"]["p50"] / (out["plain_faiss"]["p50"] + out["plain_bm25"]["p50"]), 2)
    if unseen:
        out["first_time"] = {"n": len(unseen[0]), "total": stats(first_time["wall"]),
                             "total_cpu": stats(first_time["cpu"])}
    return out


class _TimedEncoder:
    """Delegates to the real encoder and adds up the time spent encoding passages."""

    def __init__(self, encoder: PassageEncoder) -> None:
        self._encoder = encoder
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self._encoder.encode_passages(texts, progress=progress)
        finally:
            self.seconds += time.perf_counter() - start


def _add_one(big: Settings, encoder: PassageEncoder, docs: Sequence[Document], rounds: int = 3) -> dict:
    """``Indexer.build --add`` of one new article into the N index, then its removal."""
    from ..pipeline import Encoders, Indexer

    rows = []
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        for r in range(rounds):
            timed_encoder = _TimedEncoder(encoder)
            indexer = Indexer(big, encoders=Encoders(big, timed_encoder))
            stamp = time.time_ns()
            src = docs[r % len(docs)]
            path = Path(tmp) / f"added-{r}.txt"
            path.write_text(f"{src.title}（补充材料 {stamp}）\n\n本文为补充材料，编号{stamp}。\n\n{src.text}\n",
                            encoding="utf-8")
            start = time.perf_counter()
            report = indexer.build([path], add_only=True)
            total = time.perf_counter() - start
            start = time.perf_counter()
            indexer.remove(report.added)
            rows.append({"load": round(os.getloadavg()[0], 2),
                         "total_s": round(total, 2), "encode_s": round(timed_encoder.seconds, 2),
                         "rest_s": round(total - timed_encoder.seconds, 2), "embedded": report.embedded,
                         "remove_s": round(time.perf_counter() - start, 2)})
    return {"rounds": rows, "rest_s": round(float(np.median([r["rest_s"] for r in rows])), 2)}


def _milvus_lines(report: dict, lines: list[str]) -> None:
    """The folder index and Milvus side by side: same questions, same vectors, same process."""
    mv = report["milvus"]
    ms = lambda s: f"{s['p50']:.1f} / {s['p95']:.1f} ms"  # noqa: E731
    lines.append(f"\nFolder index (FAISS + bm25s) vs Milvus ({mv['uri']}):")
    lines.append(f"  {'':<52} {'folder':>22} {'Milvus':>22}")
    for key, label in (("seeds", "the seeds"), ("big", f"{report['n']} passages")):
        a, b = report[key], mv[key]
        lines.append(f"  at {label} (dense: {a['kind']} / {b['kind']}):")
        for part, name in (("total", "hybrid retrieval, query encoded"), ("dense", "  dense search"),
                           ("keyword", "  keyword search incl. jieba"), ("fusion", "  fusion, lookups, lead"),
                           ("ask", "ask in one process, with encoding")):
            lines.append(f"  {name:<52} {ms(a[part]):>22} {ms(b[part]):>22}")
    gen = mv["generate"]
    if not gen["cached"]:
        lines.append(f"  writing {report['n']} passages into Milvus: {gen['store_s']} s + commit {gen['commit_s']} s")
    a_add, b_add = report["add"], mv["add"]
    lines.append(f"  {'add one document, beyond its encoding (median)':<52} {a_add['rest_s']:>20} s"
                 f" {b_add['rest_s']:>20} s")
    lines.append(f"  {'  removing it again (first round)':<52} {a_add['rounds'][0]['remove_s']:>20} s"
                 f" {b_add['rounds'][0]['remove_s']:>20} s")
    for key, label in (("seeds", "the seeds"), ("big", f"{report['n']} passages")):
        a, b = report["cold"][key], mv["cold"][key]
        lines.append(f"  {'qa ask cold start at ' + label + ', p50':<52} {a['wall']['p50'] / 1000:>20.2f} s"
                     f" {b['wall']['p50'] / 1000:>20.2f} s" + (f"  ERRORS: {b['errors']}" if b["errors"] else ""))


# -- targets and the table ---------------------------------------------------------------
def _cache_state(build: dict) -> str:
    """How the build's peak was measured: a fresh cache converts, exports and measures the precision
    first (a first build), a warm one only compiles (every later build); benchmarks/README.md has both."""
    return "fresh" if build.get("fresh_cache") else "warm"


def targets(report: dict) -> list[dict]:
    """The issue's targets beside the figures; ``ok`` is None when a figure is missing."""
    big, n = report.get("big", {}), report["n"]
    enc, add = report.get("encoder", {}), report.get("add", {})
    cold_figures = report.get("cold", {}).get("seeds", {})
    cold = cold_figures.get("wall", {}).get("p50")
    build = report.get("build", {})
    cpu = report.get("cpu", {})
    where = f"{cpu.get('model', '?')} ({', '.join(cpu.get('flags', [])) or 'none that matter'})"
    # the p95 target is set at 100,000 passages; a larger collection's p95 is reported, not judged
    p95, p95_target = (8, "<= 8 ms") if n <= RETRIEVAL_TARGET_AT else (None, "none above 100,000")
    rows: list[tuple[str, str, Any, float | None, str, Any]] = [  # name, target, value, limit, unit, load seen
        (f"retrieval p50 at {n} (query encoded)", "<= 30 ms", big.get("total", {}).get("p50"), 30, "ms",
         big.get("load")),
        (f"retrieval p95 at {n}", p95_target, big.get("total", {}).get("p95"), p95, "ms", big.get("load")),
        ("  the same in CPU time (what load stretches least), p95", p95_target,
         big.get("total_cpu", {}).get("p95"), p95, "ms", big.get("load")),
        ("  a question asked the first time, p95", p95_target,
         big.get("first_time", {}).get("total", {}).get("p95"), p95, "ms", big.get("load")),
        ("    the same in CPU time, p95", p95_target,
         big.get("first_time", {}).get("total_cpu", {}).get("p95"), p95, "ms", big.get("load")),
        ("hybrid / (plain FAISS + plain BM25), p50", "<= 1.5x", big.get("ratio"), 1.5, "x", big.get("load")),
        (f"add one document to {n}, beyond its encoding", "<= 2 s", add.get("rest_s"), 2, "s",
         [r["load"] for r in add.get("rounds", []) if "load" in r] or None),
        ("qa ask cold start at the seeds' size, p50", "<= 2 s", cold / 1000 if cold else None, 2, "s",
         cold_figures.get("load")),
        ("  the same in CPU seconds (user + system), p50", "<= 2 s",
         cold_figures["cpu"]["p50"] / 1000 if cold_figures.get("cpu") else None, 2, "s", cold_figures.get("load")),
        (f"peak RSS of qa ask at {n}", "<= 2048 MiB", report.get("rss_mib", {}).get("ask_big"), 2048, "MiB",
         report.get("cold", {}).get("big", {}).get("load")),
        (f"peak RSS of qa build on the seeds, fresh index folder, model cache {_cache_state(build)}", "<= 1024 MiB",
         build.get("rss_mib"), 1024, "MiB",
         build.get("load")),
    ]
    first = report.get("build_first")
    if first:
        rows.append((f"peak RSS of qa build on the seeds, model cache {_cache_state(first)} (first build)",
                     "<= 1024 MiB", first.get("rss_mib"), 1024, "MiB", first.get("load")))
    out = [
        {"name": name, "target": target, "value": value, "unit": unit,
         "ok": None if value is None or limit is None else value <= limit, "cpu": where, "load": load}
        for name, target, value, limit, unit, load in rows
    ]
    ratio = enc.get("ratio")
    out.append({"name": "encoder throughput vs sentence-transformers alone", "target": ">= 0.8x", "value": ratio,
                "unit": "x", "ok": None if ratio is None else ratio >= 0.8, "cpu": where, "load": enc.get("load")})
    if "bf16" in cpu.get("native", []):  # issue 14: where bf16 is native, it must pay
        out.append({"name": "  the same, on this CPU with native bf16", "target": ">= 2.2x", "value": ratio,
                    "unit": "x", "ok": None if ratio is None else ratio >= 2.2, "cpu": where, "load": enc.get("load")})
    return out


def format_report(report: dict) -> str:
    """A readable table: figures, then the targets with PASS/MISS."""
    lines: list[str] = []
    row = lambda name, value: lines.append(f"  {name:<52} {value}")  # noqa: E731
    ms = lambda s: f"{s['p50']:.2f} / {s['p95']:.2f} ms"  # noqa: E731
    m, enc = report["model"], report["encoder"]
    lines.append(
        f"qa bench: {m['name']} (dim {m['dim']}, {m['backend']}), {report['cpus']} CPUs, "
        f"load average {report['load_before']:.1f} -> {report['load_after']:.1f}, {report['seconds']:.0f} s in all"
    )
    cpu = report.get("cpu", {})
    lines.append(f"CPU: {cpu.get('model', '?')}; flags: {', '.join(cpu.get('flags', [])) or 'none that matter'}")
    lines.append("Timings are p50 / p95 over repeated calls.")
    lines.append("\nEncoder (the seeds' real passages):")
    row("model load", f"{m['load_s']:.1f} s")
    row("inference precision", enc.get("precision", "f32"))
    lines.append(f"  passages/s on {enc['passages']} passages, {enc.get('rounds', 1)} interleaved rounds "
                 "(p50, worst; x sentence-transformers alone; min cosine with the chosen row):")
    for label, r in enc.get("rows", {}).items():
        row(f"  {label}", f"{r['p50']} ({r['worst']}); {r['vs_plain']}x; {r['min_cos_vs_chosen']}")
    row("one query encoded", ms(enc["query"]))
    gen = report["generate"]
    for key, label in (("seeds", "the seeds"), ("big", f"{report['n']} passages")):
        c = report[key]
        lines.append(f"\nRetrieval at {label} ({c['passages']} passages, FAISS {c['kind']}):")
        if key == "big":
            how = (
                "reused from the cache"
                if gen["cached"]
                else f"built: store {gen['store_s']} s + commit {gen['commit_s']} s"
            )
            lines.append(f"  generated from the seeds' sentences; vectors generated ({m['dim']} dims), {how}")
        row("hybrid retrieval, query already encoded", ms(c["total"]) + f"  (load {_load(c)})")
        row("  the same in CPU time", ms(c["total_cpu"]))
        if "first_time" in c:
            f = c["first_time"]
            row(f"  {f['n']} questions asked the first time, wall", ms(f["total"]))
            row("    the same in CPU time", ms(f["total_cpu"]))
        row("  of which FAISS (LocalReader.search_dense)", ms(c["dense"]))
        row("  of which BM25 incl. jieba (LocalReader.search_keyword)", ms(c["keyword"]))
        row("  of which fusion, store lookups, abstention, lead", ms(c["fusion"]))
        row("plain exact FAISS (IndexFlatIP), same vectors", ms(c["plain_faiss"]))
        row("plain bm25s scoring incl. jieba, same tokens", ms(c["plain_bm25"]))
        row("hybrid / (plain FAISS + plain BM25), p50", f"{c['ratio']}x")
        row("qa ask in one process (Bot.ask, with encoding)", ms(c["ask"]))
    lines.append(f"\nAdding one document to {report['n']} passages (Bot.build --add, then qa remove):")
    for r in report["add"]["rounds"]:
        row(f"{r['embedded']} passages: total / encoding / rest", f"{r['total_s']} / {r['encode_s']} / {r['rest_s']} s")
        row("  removing it again", f"{r['remove_s']} s")
    lines.append("\nCold start (new process, existing index):")
    for key, label in (("seeds", "the seeds"), ("big", f"{report['n']} passages")):
        c = report["cold"][key]
        row(f"qa ask --json at {label}, wall", f"{c['wall']['p50'] / 1000:.2f} / {c['wall']['p95'] / 1000:.2f} s"
            + (f"  ERRORS: {c['errors']}" if c["errors"] else ""))
    for key in ("seeds", "big"):
        c = report["cold"][key]
        row(f"  the same in CPU seconds (user + system), load {_load(c)}",
            f"{c['cpu']['p50'] / 1000:.2f} / {c['cpu']['p95'] / 1000:.2f} s")
    st = report["cold"].get("steps", {})
    if "steps" in st:
        lines.append(f"  one step after the other in one process (median of {st['n']}, wall / CPU ms; "
                     f"load {_load(st)}); the interpreter alone: {st['interpreter_ms']:.0f} ms")
        for one in st["steps"]:
            row(f"  {one['step']}", f"{one['wall_ms']:.0f} / {one['cpu_ms']:.0f} ms")
    elif st:
        row("  start-up steps", st.get("error"))
    for b in (report.get("build"), report.get("build_first")):
        if b:
            row(f"qa build of the seeds, fresh folder, model cache {_cache_state(b)} (load {_load(b)})",
                f"{b['wall_s']} s, {b['cpu_s']} CPU s, peak RSS {b['rss_mib']} MiB"
                + (f"  ERROR: {b['error']}" if b["error"] else ""))
    web = report["web"]
    if "first_answer_s" in web:
        row("qa serve: start -> listening -> first answer", f"{web['ready_s']} s -> {web['first_answer_s']} s")
    else:
        row("qa serve: start to first answer", web.get("skipped") or web.get("error"))
    if "milvus" in report:
        _milvus_lines(report, lines)
    lines.append("\nMemory (peak RSS):")
    row(f"qa ask at {report['n']} passages", f"{report['rss_mib']['ask_big']} MiB")
    if web.get("rss_mib"):
        row("qa serve at the seeds' size", f"{web['rss_mib']} MiB")
    row("this benchmark process (generation, builds)", f"{report['rss_mib']['bench']} MiB")
    lines.append("\nTargets:")
    for t in report["targets"]:
        verdict = "----" if t["ok"] is None else ("PASS" if t["ok"] else "MISS")
        value = "?" if t["value"] is None else f"{t['value']:g} {t['unit']}"
        lines.append(f"  {verdict}  {t['name']:<50} {value:>12}  (target {t['target']}; load {_load(t)})")
    return "\n".join(lines)


def _load(figures: dict) -> str:
    """The load average while a figure was measured: before -> after, or the values seen."""
    load = figures.get("load")
    if not load:
        return "?"
    return " -> ".join(f"{x:.1f}" for x in load)
