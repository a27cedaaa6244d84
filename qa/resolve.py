"""Where the configured embedding model comes from: a local folder, the Hugging Face cache, or the hub.

Why separate from ``embed``: finding a model must never hang and needs no
torch. A Hugging Face id is looked up in the local cache first; the hub is
probed once with a short, hard-bounded timeout before any download; every
failure becomes a ``ModelError`` whose message says what happened, so the
caller can fall back to the bundled model with one line instead of a
traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from .errors import ModelError

PROBE_TIMEOUT = 2.5  # seconds for the one reachability probe of the hub
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SKIP_DOWNLOAD = [
    "onnx/*",
    "openvino/*",
    "*.onnx",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "tf_model*",
    "flax_model*",
    "rust_model*",
]


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


def hub_endpoint() -> tuple[str, int]:
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
    host, port = hub_endpoint()
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


def cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=_hf_cache(), local_files_only=True))
    except Exception:  # noqa: BLE001 - any "not in cache" flavour: not found, incomplete, bad id
        return None


def _download(repo_id: str) -> Path:
    """Fetch from the hub; only called after ``hub_reachable()`` said yes."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, cache_dir=_hf_cache(), ignore_patterns=_SKIP_DOWNLOAD, etag_timeout=10))


def is_local(spec: str) -> bool:
    """A path (existing, or written like one) rather than a Hugging Face ``org/name`` id."""
    return spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists() or not _HF_ID.match(spec)


def resolve(spec: str) -> tuple[Path, str, str]:
    """Find the configured model on disk: (directory, display name, identity).

    Raises ``ModelError`` with the reason when it cannot be had; the caller
    falls back to the bundled model.
    """
    path: Path | None
    if is_local(spec):
        path = Path(spec).expanduser()
        if not path.is_dir():
            raise ModelError(f"model directory {spec} does not exist")
        path = path.resolve()
        return path, path.name, f"{path.name}@dir:{_dir_digest(path)}+prompts:{_prompts_tag(path)}"
    path = cached_snapshot(spec)
    if path is None:
        if _offline():
            raise ModelError(f"{spec} is not in the local Hugging Face cache and offline mode is set")
        if not hub_reachable():
            host, _ = hub_endpoint()
            raise ModelError(f"{spec} is not in the local Hugging Face cache and {host} cannot be reached")
        try:
            path = _download(spec)
        except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: all mean "not available"
            raise ModelError(f"downloading {spec} failed ({type(exc).__name__})") from None
    return path, spec, f"{spec}@{path.name}+prompts:{_prompts_tag(path)}"
