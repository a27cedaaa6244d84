"""Where each knowledge base's index lives, and where the list of bases is kept (the rules are ``qa/kb.py``'s).

A knowledge base is one complete index of the kind ``connect`` opens, so
everything a base owns (documents, passages, the embedding cache, the
manifest, the build lock, the uploads folder) is separate by construction:
``locate`` gives each base its own settings, and the index code below it is
unchanged.

Folder (``QA_INDEX_DIR``, default ``embeddings/``)::

    embeddings/                 the base "default": today's layout, untouched (CURRENT, snapshots/, ...)
    embeddings/bases/NAME/      every other base: the same layout in its own folder, plus
        base.json               its record (title, private, the key's SHA-256), written atomically
        documents/              what ``qa --kb NAME build`` indexes when given no path

Why ``default`` stays at the root: an index built before bases existed opens
as ``default`` with nothing moved or re-embedded, and a crash can lose nothing
because nothing is migrated. A base is created by renaming a finished
temporary folder into place and deleted by renaming it away first (under its
build lock), so its record and its index appear and vanish together.

Milvus (``QA_MILVUS_URI``, collection prefix ``QA_MILVUS_COLLECTION``, say ``qa``)::

    qa, qa_b<n>, qa_b<n>_meta, qa_lock      the base "default": today's names, untouched
    qa_kb_<NAME'>, qa_kb_<NAME'>_b<n> ...   every other base, with its own alias and lock
    qa_kbs                                  the records of the bases (name -> JSON), one row each

``NAME'`` is the name with ``_`` written ``__`` and ``-`` written ``_0``:
reversible, so two bases never share a collection, and no base's names match
another's ``<alias>_b<n>`` pattern (a base's collections always continue
``_kb_``; a name's own underscores come doubled). The records live in Milvus
so every replica sees the same bases; the embedding cache, ``documents/`` and
``uploads/`` of a base stay local in ``QA_INDEX_DIR/bases/NAME/``, as they do
for ``default``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UsageError
from . import durable

if TYPE_CHECKING:
    from ..config import Settings

DEFAULT = "default"
FOLDER = "bases"
RECORD = "base.json"
MAX_RECORD = 4096  # bytes of one record's JSON (a title is cut before that)


def base_dir(settings: Settings, name: str) -> Path:
    """The local folder of base ``name`` (the index itself for the folder backend)."""
    return Path(settings.index_dir) if name == DEFAULT else Path(settings.index_dir) / FOLDER / name


def collection(settings: Settings, name: str) -> str:
    """The Milvus alias (and collection prefix) of base ``name``."""
    if name == DEFAULT:
        return settings.milvus_collection
    encoded = name.replace("_", "__").replace("-", "_0")
    return f"{settings.milvus_collection}_kb_{encoded}"


def locate(settings: Settings, name: str) -> Settings:
    """The settings of base ``name`` under the deployment ``settings``: its own index folder and Milvus
    alias; for ``default`` the deployment's own, unchanged."""
    if name == DEFAULT:
        return settings.with_(kb=DEFAULT)
    alias = collection(settings, name)
    if settings.milvus_uri and len(alias) > 150:
        raise UsageError(
            f"The Milvus collection of knowledge base {name} would be longer than Milvus allows.",
            "Use a shorter base name or a shorter QA_MILVUS_COLLECTION.",
        )
    folder = base_dir(settings, name)
    return settings.with_(
        kb=name, index_dir=folder, seeds_dir=folder / "documents",
        milvus_collection=alias if settings.milvus_uri else settings.milvus_collection,
    )


class Registry(Protocol):
    """The records of the bases other than ``default`` (which is never stored): name -> a small JSON object."""

    def records(self) -> dict[str, dict[str, Any]]: ...

    def get(self, name: str) -> dict[str, Any] | None: ...

    def add(self, name: str, record: dict[str, Any]) -> None:
        """Store a new base; ``UsageError`` if the name is taken."""
        ...

    def put(self, name: str, record: dict[str, Any]) -> None:
        """Replace the record of an existing base."""
        ...

    def drop(self, name: str) -> None:
        """Delete the base: its index first, then its record. ``IndexBusy`` while it is being built."""
        ...


def registry(settings: Settings) -> Registry:
    """Where the deployment ``settings`` keeps its bases: Milvus when it serves the index, else the folder."""
    if settings.milvus_uri:
        return MilvusRegistry(settings)
    return FolderRegistry(settings)


def _encode(record: dict[str, Any]) -> str:
    body = json.dumps(record, ensure_ascii=False, sort_keys=True)
    if len(body.encode("utf-8")) > MAX_RECORD:
        raise UsageError("The knowledge base's record is too long.", "Use a shorter title.")
    return body


def _decode(body: str) -> dict[str, Any] | None:
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _taken(name: str) -> UsageError:
    return UsageError(f"A knowledge base named {name} exists already.", "Choose another name (qa kb list).")


class FolderRegistry:
    """Records in ``QA_INDEX_DIR/bases/NAME/base.json``, beside each base's index."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.index_dir) / FOLDER

    def records(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or folder.name == DEFAULT:
                continue  # a base being created or deleted
            record = self.get(folder.name)
            if record is not None:
                found[folder.name] = record
        return found

    def get(self, name: str) -> dict[str, Any] | None:
        if name == DEFAULT or name.startswith("."):
            return None
        try:
            return _decode((self.root / name / RECORD).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def add(self, name: str, record: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f".new-{secrets.token_hex(6)}"
        temp.mkdir()
        try:
            durable.write_file(temp / RECORD, _encode(record).encode("utf-8"))
            (temp / "documents").mkdir()
            durable.fsync(str(temp))
            target = self.root / name
            if target.exists():
                raise _taken(name)
            try:
                os.rename(temp, target)  # atomic; refused when a non-empty folder of that name appeared meanwhile
            except OSError:
                raise _taken(name) from None
            durable.fsync(str(self.root))
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def put(self, name: str, record: dict[str, Any]) -> None:
        folder = self.root / name
        temp = folder / f".{RECORD}.{secrets.token_hex(4)}"
        durable.write_file(temp, _encode(record).encode("utf-8"))
        os.replace(temp, folder / RECORD)
        durable.fsync(str(folder))

    def drop(self, name: str) -> None:
        folder = self.root / name
        if not folder.is_dir():
            return
        fd = durable.take_lock(folder / "build.lock")  # IndexBusy while a build of this base runs
        try:
            trash = self.root / f".deleted-{secrets.token_hex(6)}"
            os.rename(folder, trash)  # record and index vanish together
            durable.fsync(str(self.root))
        finally:
            os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)


class MilvusRegistry:
    """Records in the collection ``<QA_MILVUS_COLLECTION>_kbs``, shared by every replica."""

    def __init__(self, settings: Settings) -> None:
        from .milvus.client import Connection

        self.settings = settings
        self.name = f"{settings.milvus_collection}_kbs"
        self._c = Connection(settings.milvus_uri, settings.milvus_token, settings.milvus_db, self.name)
        self._ready = False

    def _ensure(self) -> None:
        if self._exists():
            return
        from .milvus.client import Refused

        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("k", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("body", DataType.VARCHAR, max_length=MAX_RECORD * 4)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
        index = MilvusClient.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        try:
            self._c.call("create_collection", self.name, schema=schema, index_params=index)
        except Refused:
            if not self._c.call("has_collection", self.name):  # else another process made it first
                raise
        self._ready = True

    def _exists(self) -> bool:
        """Reading creates nothing: a deployment without other bases keeps exactly its collections."""
        if not self._ready:
            self._ready = bool(self._c.call("has_collection", self.name))
        return self._ready

    def records(self) -> dict[str, dict[str, Any]]:
        if not self._exists():
            return {}
        rows = self._c.query_all(self.name, 'k != ""', ["k", "body"])
        found = {str(row["k"]): _decode(str(row["body"])) for row in rows}
        return {name: record for name, record in sorted(found.items()) if record is not None}

    def get(self, name: str) -> dict[str, Any] | None:
        if not self._exists():
            return None
        rows = self._c.call("query", self.name, filter=f"k == {json.dumps(name)}", output_fields=["body"],
                            consistency_level="Strong")
        return _decode(str(rows[0]["body"])) if rows else None

    def add(self, name: str, record: dict[str, Any]) -> None:
        if self.get(name) is not None:  # two creators of one name at the same moment: the later one wins
            raise _taken(name)
        self.put(name, record)
        base_dir(self.settings, name).joinpath("documents").mkdir(parents=True, exist_ok=True)

    def put(self, name: str, record: dict[str, Any]) -> None:
        self._ensure()
        self._c.call("upsert", self.name, [{"k": name, "body": _encode(record), "v": [0.0, 0.0]}])

    def drop(self, name: str) -> None:
        from .milvus import MilvusBackend
        from .milvus.client import Refused
        from .milvus.lock import BuildLock

        backend = MilvusBackend(locate(self.settings, name))
        lock = BuildLock(backend).take()  # IndexBusy while a build of this base runs
        try:
            try:
                backend.call("drop_alias", alias=backend.name)
            except Refused:
                pass  # never built
            for base in backend.bases():
                for each in (backend.meta(base), base):
                    try:
                        backend.call("drop_collection", each)
                    except Refused:
                        pass
        finally:
            lock.release()
        self._ensure()
        self._c.call("delete", self.name, filter=f"k == {json.dumps(name)}")
        shutil.rmtree(base_dir(self.settings, name), ignore_errors=True)
