"""All settings in one frozen dataclass, filled from flags and ``QA_*`` variables.

Precedence: a command-line flag beats a ``QA_*`` environment variable, which
beats the default. Defaults are chosen so that ``qa build`` and ``qa ask``
work from the project folder with no configuration at all.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import UsageError


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qa"


@dataclass(frozen=True)
class Settings:
    # where things live
    index_dir: Path = Path("embeddings")  # QA_INDEX_DIR: built index (not committed)
    seeds_dir: Path = Path("seeds")  # QA_SEEDS_DIR: what `qa build` indexes by default
    cache_dir: Path = _default_cache_dir()  # QA_CACHE_DIR: converted model, exported backends

    # embedding model: "" means the bundled multilingual-e5-small
    model: str = ""  # QA_MODEL: local dir, Hugging Face id, or "" for the bundled model
    backend: str = "auto"  # QA_BACKEND: auto | torch | openvino
    precision: str = "auto"  # QA_PRECISION: auto | f32 | bf16 | int8 (OpenVINO inference precision)
    ov_streams: int = 0  # QA_OV_STREAMS: OpenVINO inference streams (parallel requests) for passages; 0: one per thread

    # a served index instead of the folder (see qa/index/milvus/); empty: the FAISS folder
    milvus_uri: str = ""  # QA_MILVUS_URI: http(s)://host:port of a Milvus server, or a local *.db file (Milvus Lite)
    milvus_token: str = ""  # QA_MILVUS_TOKEN: "user:password" or an API key, when the server asks for one
    milvus_db: str = ""  # QA_MILVUS_DB: the Milvus database; empty: the server's default
    milvus_collection: str = "qa"  # QA_MILVUS_COLLECTION: names the alias and the collections behind it

    # knowledge bases (qa/kb.py): which one the CLI acts on
    kb: str = "default"  # QA_KB: the knowledge base of build, ask, docs, remove, eval, bench (--kb)

    # chunking (a change forces a full rebuild)
    chunk_size: int = 400  # QA_CHUNK_SIZE: target characters per passage
    chunk_max: int = 600  # QA_CHUNK_MAX: a longer single sentence is cut here
    chunk_overlap: int = 1  # QA_CHUNK_OVERLAP: whole sentences repeated between passages

    # retrieval
    top_k: int = 5  # QA_TOP_K: passages returned per question

    # web chat
    host: str = "127.0.0.1"  # QA_HOST
    port: int = 7860  # QA_PORT
    admin_password: str = ""  # QA_ADMIN_PASSWORD: empty disables upload/remove/rebuild
    max_upload_mb: int = 20  # QA_MAX_UPLOAD_MB

    # the OpenAI-compatible and REST API (qa/web/api.py, docs/api.md)
    api_key: str = ""  # QA_API_KEY: one key or several, comma-separated; empty: /v1 and /api are open
    api_queue: int = 32  # QA_API_QUEUE: API questions that may wait for an answer slot; more get 429

    # ingestion
    max_file_mb: int = 20  # QA_MAX_FILE_MB: larger files are skipped by `qa build` (0: no cap); see README

    # written answers from an OpenAI-compatible LLM (qa/generate.py); empty URL: none, and no network call
    llm_url: str = ""  # QA_LLM_URL: base URL of the API, e.g. http://127.0.0.1:11434/v1 (Ollama)
    llm_model: str = ""  # QA_LLM_MODEL: the model name the server knows (empty: "default")
    llm_api_key: str = ""  # QA_LLM_API_KEY: sent as a bearer token; local servers usually need none
    llm_timeout: int = 30  # QA_LLM_TIMEOUT: seconds for the whole reply, streaming included; then the lead is shown

    @classmethod
    def load(cls, **overrides: Any) -> "Settings":
        """Build settings from ``QA_*`` variables, then apply non-None overrides (flags)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw, f.type)
        for key, value in overrides.items():
            if value is not None:
                values[key] = _convert(key, value, cls.__dataclass_fields__[key].type)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> "Settings":
        """A copy with ``changes``, checked like settings loaded from flags and variables."""
        settings = replace(self, **changes)
        settings.validate()
        return settings

    @property
    def api_keys(self) -> list[str]:
        """The keys ``QA_API_KEY`` names (comma-separated, blanks dropped); none: the API is open."""
        return [key.strip() for key in self.api_key.split(",") if key.strip()]

    @property
    def uploads_dir(self) -> Path:
        """Where the web chat keeps uploaded files. The web chat's folder, not the index's: it
        sits in the index folder only because that is the one folder the app may write to,
        and no index code reads or removes it."""
        return self.index_dir / "uploads"

    def validate(self) -> None:
        if self.chunk_size < 50:
            raise UsageError(
                f"Chunk size {self.chunk_size} is too small.", "Use at least 50 characters (QA_CHUNK_SIZE)."
            )
        if self.chunk_max < self.chunk_size:
            raise UsageError(
                f"QA_CHUNK_MAX ({self.chunk_max}) is smaller than QA_CHUNK_SIZE ({self.chunk_size}).",
                "Set QA_CHUNK_MAX to at least the chunk size.",
            )
        if self.chunk_overlap < 0:
            raise UsageError("Chunk overlap cannot be negative.", "Use 0 or more sentences (QA_CHUNK_OVERLAP).")
        if self.top_k < 1:
            raise UsageError(f"Top-k must be at least 1, not {self.top_k}.", "Use -k 1 or more.")
        if self.backend not in ("auto", "torch", "openvino"):
            raise UsageError(f"Unknown backend {self.backend!r}.", "Use auto, torch or openvino (QA_BACKEND).")
        if self.milvus_uri and not (
            self.milvus_uri.startswith(("http://", "https://", "tcp://", "unix:")) or self.milvus_uri.endswith(".db")
        ):
            raise UsageError(
                f"QA_MILVUS_URI {self.milvus_uri!r} is neither a server address nor a Milvus Lite file.",
                "Use http://host:19530 (or https://) for a server, or a path ending in .db for Milvus Lite.",
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,150}", self.milvus_collection):
            raise UsageError(
                f"QA_MILVUS_COLLECTION {self.milvus_collection!r} is not a valid Milvus collection name.",
                "Use letters, digits and underscores, starting with a letter (at most 150 characters).",
            )
        check_kb_name(self.kb)
        if self.precision not in ("auto", "f32", "bf16", "int8"):
            raise UsageError(f"Unknown precision {self.precision!r}.", "Use auto, f32, bf16 or int8 (QA_PRECISION).")
        if self.max_file_mb < 0:
            raise UsageError(
                f"QA_MAX_FILE_MB cannot be negative ({self.max_file_mb}).", "Use 0 for no cap, or a size in MB."
            )
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise UsageError(
                f"QA_LLM_URL {self.llm_url!r} is not an http(s) address.",
                "Use the API's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8000/v1 (vLLM).",
            )
        if self.llm_timeout < 1:
            raise UsageError(f"QA_LLM_TIMEOUT must be at least 1 second, not {self.llm_timeout}.", "Use e.g. 30.")
        if self.api_queue < 0:
            raise UsageError(f"QA_API_QUEUE cannot be negative ({self.api_queue}).", "Use 0 or more, e.g. 32.")
        if not 0 < self.port < 65536:
            raise UsageError(f"Port {self.port} is out of range.", "Use a port between 1 and 65535.")


KB_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_kb_name(name: str) -> str:
    """``name`` when it may name a knowledge base (letters, digits, ``-``, ``_``; 1 to 64), else ``UsageError``."""
    if not isinstance(name, str) or not KB_NAME.fullmatch(name):
        shown = repr(name[:70] + ("…" if len(name) > 70 else "")) if isinstance(name, str) else repr(name)
        raise UsageError(
            f"{shown} is not a valid knowledge base name.",
            "Use 1 to 64 letters, digits, - or _ (e.g. hr-rules).",
        )
    return name


def _convert(name: str, value: Any, type_name: Any) -> Any:
    kind = str(type_name)
    try:
        if "Path" in kind:
            return Path(os.path.expanduser(str(value)))
        if "int" in kind:
            return int(value)
        return str(value)
    except ValueError:
        raise UsageError(
            f"Setting {name} (QA_{name.upper()}) must be a whole number, not {value!r}.",
            "Fix the flag or environment variable and try again.",
        ) from None
