"""The index in one folder: snapshots, manifest, build lock and the atomic switch.

``LocalBackend`` is the implementation of ``interface.IndexBackend`` that
``qa.index.connect`` returns unless a Milvus server is named; ``LocalReader``
is one loaded snapshot, ``LocalWriter`` one build. This module is the only
code that knows the folder's layout.

Layout of ``index_dir``::

    CURRENT                  names the live snapshot (e.g. "000007")
    snapshots/<gen>/         one per generation: vectors.faiss, bm25/, manifest.json, and for
                             a delta snapshot bm25-delta/ and vectors-delta/
    store-<gen>.sqlite       passages and documents, shared by generations (see store.py)
    cache.sqlite             embedding cache, keyed by (encoder identity, sha256(text))
    build.lock               flock'd by the one running build

A build writes a complete new snapshot beside the live one, fsyncs it,
commits its store rows, and only then replaces ``CURRENT`` (write, fsync, rename,
fsync the directory).

Segments. An incremental build whose changes are small writes a *delta
snapshot*: the base's files (``vectors.faiss``, ``bm25/``) hard-linked from the
previous snapshot, never rewritten, plus ``bm25-delta/`` and
``vectors-delta/`` holding every change since that base (added rows,
tombstones of removed base rows; see keyword.py and vectors.py). A reader
combines them and answers as a single index over the same passages would.
Once the delta would exceed ``MERGE_ROWS`` changed rows or its base's size,
or the dense index type changes with the size, the build writes one segment
again (a merge), as a full build does. A hard link is a new name for a file
that is complete and fsynced; a delta snapshot is fsynced and switched like
any other, so the crash-safety contract below holds unchanged; clean-up
unlinks names, and a base's data goes with its last name.

Crash-safety contract:

- The rename of ``CURRENT`` is the commit point. Before it, a fault of any
  kind (an exception, Ctrl-C, SIGKILL, power loss) leaves ``CURRENT`` naming
  the previous snapshot, complete and answering; the next build removes what
  the failed one left. From it on, the new snapshot is live, even if the
  directory fsync after it raises.
- No code path deletes the snapshot or the store that ``CURRENT`` names: a
  builder that meets an exception once it has started the rename deletes
  nothing of its own unless it reads ``CURRENT`` and finds the previous name.
- Clean-up (after the switch) deletes only what no kept snapshot needs. Kept
  are the new snapshot, the previous one, and every older one a reader still
  pins (a shared ``flock`` on its ``READERS`` file, held by ``LocalReader`` until it is
  closed or garbage-collected). So a question that took a snapshot keeps
  reading its passages while any number of builds commit; what it pinned goes
  in the first build after it lets go. A fault during clean-up only leaves
  extra files for the next build.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import IndexCorrupt, IndexWriteError, UsageError
from ..types import DocInfo, Document, Passage
from . import durable
from .common import FORMAT, REBUILD, LiveReader, WriterBase, open_live, short_error
from .interface import IndexReader
from .keyword import KeywordDelta, KeywordIndex, KeywordSegments
from .keyword import library_version as keyword_lib
from .store import EmbeddingCache, Store
from .vectors import VectorDelta, VectorIndex, kind_for
from .vectors import library_version as vector_lib

__all__ = ["EmbeddingCache", "LocalBackend", "LocalReader", "LocalWriter", "current_version", "open_index"]

_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, EOFError, TypeError, sqlite3.DatabaseError)
DELTA_FORMAT = FORMAT + 1  # a snapshot with delta segments: a reader without them refuses it with REBUILD
_FORMATS = (FORMAT, DELTA_FORMAT)
# A delta grows to at most this many changed rows (added passages + tombstones) before a build merges it.
# Each build rewrites the delta (1.5 KB of vector per row) and each reader adds its vectors to the loaded
# base (assigning them to IVF lists): about 0.1 s at 5,000 rows and 1,000,000 passages (benchmarks/README.md).
MERGE_ROWS = 5_000
_DELTA_DIRS = ("bm25-delta", "vectors-delta")


class LocalBackend:
    """``IndexBackend`` over one folder (``QA_INDEX_DIR``)."""

    builds_on_first_use = True  # a folder is this machine's own: the first question may fill it from the seeds

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self._live: LiveReader[LocalReader] = LiveReader()

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def live_version(self) -> str | None:
        return current_version(self.index_dir)

    def live(self) -> LocalReader:
        return self._live.get(current_version(self.index_dir), self.open)

    def open(self) -> LocalReader:
        return open_index(self.index_dir)

    def writer(self, fresh: bool = False, previous: IndexReader | None = None) -> LocalWriter:
        reusable = previous if isinstance(previous, LocalReader) else None
        return LocalWriter(self.index_dir, fresh=fresh, previous=reusable)

    def vector_cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.index_dir)


def current_version(index_dir: Path) -> str | None:
    """The live snapshot's name, or None when there is no index; cheap enough per query."""
    try:
        return (Path(index_dir) / "CURRENT").read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def open_index(index_dir: Path) -> LocalReader:
    """Load the live snapshot; ``IndexMissing`` before the first build, ``IndexCorrupt`` when damaged."""
    index_dir = Path(index_dir)
    return open_live(str(index_dir), lambda: current_version(index_dir),
                     lambda version: LocalReader(index_dir, version))


class LocalReader:
    """One snapshot, loaded; safe to query from several threads.

    ``vectors`` (FAISS) and ``keyword`` (bm25s) are its loaded indexes. They
    are public for one reader only: a ``LocalWriter`` given this reader as
    ``previous`` updates them for its new snapshot instead of reading them
    from disk again, after which this reader must not be queried.

    Why ``vectors`` is read at its first use, not at open: the FAISS file is
    the one index file read whole (1.5 KB per passage, 1.5 GB and seconds at
    1,000,000 passages), and a build opens the live snapshot only to compare
    manifests and to put a delta beside its base, which needs none of it.
    Opening checks the file's header instead (size, kind, dimension and
    count); a question's first dense search reads it.
    """

    keyword: KeywordIndex | KeywordSegments

    def __init__(self, index_dir: Path, version: str) -> None:
        self.index_dir = Path(index_dir)
        self.version = version
        snap = self.index_dir / "snapshots" / version
        try:  # pinned before anything is read: from here on no build deletes what this reader needs
            pin = durable.pin(snap)
        except OSError:
            raise IndexCorrupt(f"Index snapshot {snap} is being removed.", REBUILD) from None
        self._unpin = weakref.finalize(self, os.close, pin) if pin is not None else None
        self._snap = snap
        self._vectors: VectorIndex | None = None
        self._vectors_lock = threading.Lock()
        try:
            self._open(snap)
        except BaseException:
            self._release_pin()
            raise

    def _open(self, snap: Path) -> None:
        self.manifest = _read_manifest(snap / "manifest.json")
        self.generation = int(self.manifest["generation"])
        for rel, size in self.manifest["files"].items():
            actual = (snap / rel).stat().st_size if (snap / rel).is_file() else -1
            if actual != size:
                state = "missing" if actual < 0 else f"truncated or damaged ({actual} bytes, expected {size})"
                raise IndexCorrupt(f"Index file {snap / rel} is {state}.", REBUILD)
        store_path = self.index_dir / self.manifest["store"]
        if not store_path.is_file():
            raise IndexCorrupt(f"Index store {store_path} is missing.", REBUILD)
        try:
            self._store = Store(store_path, readonly=True)
            documents = self._store.check(self.generation)
        except sqlite3.DatabaseError as error:
            raise IndexCorrupt(f"Index store {store_path} cannot be read ({error}).", REBUILD) from None
        try:
            segments = self.manifest.get("delta") or {}
            passages = int(self.manifest["passages"])
            base_rows = passages - int(segments.get("added", 0)) + int(segments.get("removed", 0))
            header = _load(VectorIndex.peek, snap / "vectors.faiss")
            if header != (self.manifest["vectors"]["dim"], base_rows):
                raise IndexCorrupt(f"Index file {snap / 'vectors.faiss'} cannot be read (header {header},"
                                   f" expected {(self.manifest['vectors']['dim'], base_rows)}).", REBUILD)
            base = _load(KeywordIndex.load, snap / "bm25")
            self.keyword = base
            if segments:
                self.keyword = _load(lambda path: KeywordSegments(base, KeywordDelta.load(path)), snap / "bm25-delta")
        except IndexCorrupt:
            self._store.close()
            raise
        counts = (len(self.keyword), passages)
        if len(set(counts)) != 1 or documents != self.manifest["documents"]:
            self._store.close()
            raise IndexCorrupt(f"The index in {snap} is inconsistent (passages {counts}).", REBUILD)

    @property
    def vectors(self) -> VectorIndex:
        """The dense index with the snapshot's delta applied, read at first use (see the class docstring)."""
        loaded = self._vectors
        if loaded is None:
            with self._vectors_lock:
                if self._vectors is None:
                    self._vectors = self._load_vectors()
                loaded = self._vectors
        return loaded

    def _load_vectors(self) -> VectorIndex:
        snap = self._snap
        vectors = _load(VectorIndex.load, snap / "vectors.faiss", self.manifest["vectors"]["kind"])
        if self.manifest.get("delta"):
            delta = _load(VectorDelta.load, snap / "vectors-delta", self.manifest["vectors"]["dim"])
            _load(lambda _: vectors.apply(delta), snap / "vectors-delta")
        if len(vectors) != self.passage_count():
            raise IndexCorrupt(f"The index in {snap} is inconsistent ({len(vectors)} vectors,"
                               f" {self.passage_count()} passages).", REBUILD)
        return vectors

    def search_dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(passage id, cosine similarity), best first."""
        return self.vectors.search(qvec, k)

    def search_keyword(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score), best first; passages sharing no token are left out."""
        return self.keyword.search(tokens, k)

    def doc_freq(self, token: str) -> int:
        """Passages containing ``token`` (for IDF weights outside BM25)."""
        return self.keyword.doc_freq(token)

    def passage_count(self) -> int:
        return int(self.manifest["passages"])

    def describe(self) -> dict[str, Any]:
        return {"engine": "FAISS + bm25s + SQLite", "dense": self.manifest["vectors"]["kind"],
                "passages": self.passage_count(), "location": str(self.index_dir),
                "delta": dict(self.manifest.get("delta") or {})}

    def passages(self, ids: Sequence[int]) -> list[tuple[Passage, Document]]:
        """(passage, its document) for each id, in the order given."""
        return self._read(self._store.passages, ids)

    def documents(self) -> list[DocInfo]:
        return self._read(self._store.documents, self.generation)

    def document(self, doc_id: str) -> Document:
        doc = self._read(self._store.document, doc_id, self.generation)
        if doc is None:
            raise UsageError(f"No document with id {doc_id}.", "List the ids with: qa docs")
        return doc

    def _read(self, method, *args):
        """Store reads; damage found only now (a garbled page) still gets a clear message."""
        try:
            return method(*args)
        except KeyError as error:
            raise IndexCorrupt(f"Passage {error} is missing from {self._store.path}.", REBUILD) from None
        except sqlite3.DatabaseError as error:
            raise IndexCorrupt(f"Index store {self._store.path} cannot be read ({error}).", REBUILD) from None

    def close(self) -> None:
        self._store.close()
        self._release_pin()

    def _release_pin(self) -> None:
        if self._unpin is not None:
            self._unpin()  # closes the pin's descriptor once, whether called here or at garbage collection

    def __enter__(self) -> LocalReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalWriter(WriterBase):
    """Writes the next snapshot; use as a context manager and call ``commit``."""

    def __init__(self, index_dir: Path, fresh: bool = False, previous: LocalReader | None = None) -> None:
        """``previous``: the live snapshot, already opened by the caller; an
        incremental commit then takes its BM25 base and delta as loaded, and a
        merge updates its FAISS index (read then, unless a question already
        has) instead of reading both again. It must not be queried afterwards."""
        self.index_dir = Path(index_dir)
        self.fresh = fresh
        self._opened = previous
        self._lock_fd: int | None = None
        self._switching = False  # the CURRENT rename has been started: from now on CURRENT may name our snapshot
        self._committed = False  # the rename returned: the build is live

    # -- lifecycle (the ``with`` block is ``WriterBase``'s) ----------------------
    def _acquire(self) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = durable.take_lock(self.index_dir / "build.lock")

    def _start(self) -> None:
        version = current_version(self.index_dir)
        self._version = version
        self.previous = int(version) if version else 0
        self.gen = self.previous + 1
        self._snap = self.index_dir / "snapshots" / f"{self.gen:06d}"
        self._prev = self.index_dir / "snapshots" / f"{self.previous:06d}"
        self._base: dict | None = None
        if version and not self.fresh:
            self._base = _read_manifest(self.index_dir / "snapshots" / version / "manifest.json")
        for leftover in _snapshot_dirs(self.index_dir):  # partial snapshots of dead builds
            if leftover.name != version and not (leftover.name.isdigit() and int(leftover.name) < self.previous):
                shutil.rmtree(leftover, ignore_errors=True)
        self.store_name = self._base["store"] if self._base else f"store-{self.gen:06d}.sqlite"
        if not self._base:
            durable.remove_store(self.index_dir / self.store_name)
        try:
            self._store = Store(self.index_dir / self.store_name)
            self._store.discard_after(self.previous)
            self._store.begin()
        except sqlite3.DatabaseError as error:
            raise IndexCorrupt(
                f"Index store {self.index_dir / self.store_name} cannot be read ({error}).", REBUILD
            ) from None
        self.dim = self._base["vectors"]["dim"] if self._base else None
        self._removed: set[int] = set()  # ids of the live snapshot that go
        self._added: dict[int, tuple[np.ndarray, list[str]]] = {}  # only kept for an incremental commit

    def _discard(self) -> None:
        """Undo an uncommitted build, deleting only what CURRENT is known not to name."""
        try:
            self._store.rollback()
        finally:
            self._store.close()
        if self._switching and not self._still_previous():
            return  # the rename may have happened: keep everything; the next build tidies up
        shutil.rmtree(self._snap, ignore_errors=True)
        if not self._base:
            durable.remove_store(self.index_dir / self.store_name)

    def _still_previous(self) -> bool:
        """True only when CURRENT can be read and still names the snapshot this build started from."""
        try:
            name = (self.index_dir / "CURRENT").read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            name = None
        except (OSError, UnicodeDecodeError):
            return False
        return name == self._version

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- what the pipeline calls -------------------------------------------------
    def existing(self) -> dict[str, str]:
        """doc_id -> content_hash of what the new snapshot holds so far."""
        return self._store.existing(self.gen)

    def document_path(self, doc_id: str) -> str | None:
        return self._store.document_path(doc_id, self.gen)

    def passage_count(self) -> int:
        """Passages the new snapshot will hold: the live snapshot's, minus removed, plus added (no table scan)."""
        if self._base:
            return int(self._base["passages"]) - len(self._removed) + len(self._added)
        return self._store.passage_count(self.gen)

    def remove_document(self, doc_id: str) -> None:
        for pid in self._store.remove_document(doc_id, self.gen):
            if self._added.pop(pid, None) is None:
                self._removed.add(pid)

    def add_document(
        self, doc: Document, passages: Sequence[Passage], vectors: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> None:
        """Add (or replace) ``doc`` with its passages, their vectors and jieba tokens."""
        vectors = self._admit(doc, passages, vectors, tokens)
        ids = self._store.add_document(doc, passages, vectors, tokens, self.gen)
        if self._base:
            for pid, vec, toks in zip(ids, vectors, tokens, strict=True):
                self._added[pid] = (vec, list(toks))

    def commit(self, manifest: Mapping[str, Any]) -> None:
        """Write the snapshot, make it durable, then switch CURRENT to it.

        Steps, in order: snapshot files (vectors, BM25, reader pin, manifest),
        fsync of each file and folder, the store's COMMIT, CURRENT.tmp written
        and fsynced, the rename (the commit point), the folder fsync, clean-up.
        A disk error before the rename raises ``IndexWriteError`` saying the
        index is unchanged; one after it (the folder fsync) raises
        ``IndexWriteError`` saying the new index is live. A fault during
        clean-up is swallowed: the build is committed, and the next build
        removes the rest.
        """
        dim = self._commit_dim(manifest)
        unchanged = f"The new index could not be written; the index in {self.index_dir} is unchanged"
        hint = "Free disk space or check the disk, then run: qa build"
        try:
            self._write_snapshot(manifest, dim)
            self._store.commit()
        except (OSError, sqlite3.Error) as error:
            raise IndexWriteError(f"{unchanged} ({short_error(error)}).", hint) from None
        self._switching = True
        try:
            durable.replace_current(self.index_dir, self._snap.name)
        except OSError as error:
            if self._still_previous():
                raise IndexWriteError(f"{unchanged} ({short_error(error)}).", hint) from None
            self._committed = True
            raise IndexWriteError(
                f"The new index in {self.index_dir} is live, but the disk failed while making the switch"
                f" durable ({short_error(error)}).", "Check the disk; the next qa build tidies up."
            ) from None
        self._committed = True
        self._collect()

    def _write_snapshot(self, manifest: Mapping[str, Any], dim: int) -> None:
        n = self.passage_count()
        shutil.rmtree(self._snap, ignore_errors=True)
        self._snap.mkdir(parents=True)
        plan = self._plan(n, dim)
        if plan is not None and plan.delta_fits():
            kind = self._write_delta(plan)
            segments = {"base": plan.base_name, "added": len(plan.keyword.ids),
                        "removed": len(plan.keyword.removed)} if len(plan.keyword) else None
        else:
            vectors = self._vectors(n, dim, plan)
            vectors.save(self._snap / "vectors.faiss")
            keyword = self._keyword(plan)
            keyword.save(self._snap / "bm25")
            if not (len(vectors) == len(keyword) == n):
                raise RuntimeError(
                    f"index sizes disagree: {len(vectors)} vectors, {len(keyword)} BM25 rows, {n} passages")
            kind, segments = vectors.kind, None
        full = dict(manifest)
        full.update(
            format=DELTA_FORMAT if segments else FORMAT, generation=self.gen, store=self.store_name, passages=n,
            documents=self._store.check(self.gen), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            vectors={"kind": kind, "dim": dim}, delta=segments,
            libraries={"faiss": vector_lib(), "bm25s": keyword_lib(), "numpy": np.__version__},
            files={
                str(p.relative_to(self._snap)): p.stat().st_size for p in sorted(self._snap.rglob("*")) if p.is_file()
            },
        )
        durable.write_file(self._snap / durable.PIN, b"")  # readers flock it; not listed: it is not index data
        durable.write_file(self._snap / "manifest.json", json.dumps(full, ensure_ascii=False, indent=1).encode("utf-8"))
        durable.fsync_tree(self._snap)

    # -- commit helpers ------------------------------------------------------------
    def _plan(self, n: int, dim: int) -> _Plan | None:
        """The previous snapshot's base and the delta this build's changes make of it; None: no base to reuse."""
        if not self._base or not self._base["passages"]:
            return None
        try:
            opened = self._previous_reader()
            had = bool(self._base.get("delta"))
            if opened is not None:
                keyword = opened.keyword
                base, delta = (keyword.base, keyword.delta) if isinstance(keyword, KeywordSegments) else (keyword, None)
            else:
                base = KeywordIndex.load(self._prev / "bm25")
                delta = KeywordDelta.load(self._prev / "bm25-delta") if had else None
            vectors = VectorDelta.load(self._prev / "vectors-delta", dim) if had else VectorDelta.empty(dim)
            added = list(self._added.items())
            ids = np.fromiter((pid for pid, _ in added), dtype=np.int64, count=len(added))
            vecs = np.stack([v for _, (v, _) in added]) if added else np.zeros((0, dim), np.float32)
            tokens = [t for _, (_, t) in added]
            keyword_delta = (delta if delta is not None else KeywordDelta()).changed(
                base.vocab, self._removed, ids, tokens)
            vector_delta = vectors.changed(self._removed, ids, vecs)
        except _READ_ERRORS:
            return None  # rebuild from the store
        kind = self._base["vectors"]["kind"]
        name = (self._base.get("delta") or {}).get("base") or self._prev.name
        return _Plan(name, base, keyword_delta, vector_delta, kind, kind_for(n, kind) == kind, n)

    def _write_delta(self, plan: _Plan) -> str:
        """The delta snapshot: the base's files linked from the previous snapshot, the deltas written.

        An empty delta (what was added since the base was removed again) is not written: the snapshot is
        then the base alone, a plain one-segment snapshot that readers score with its stored weights."""
        for rel in self._base["files"] if self._base else ():
            if rel.split("/", 1)[0] in _DELTA_DIRS:
                continue
            target = self._snap / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(self._prev / rel, target)
        if len(plan.keyword):
            plan.keyword.save(self._snap / "bm25-delta")
            plan.vectors.save(self._snap / "vectors-delta")
        return plan.kind

    def _vectors(self, n: int, dim: int, plan: _Plan | None) -> VectorIndex:
        if self._base and plan is not None and plan.same_kind:
            opened = self._previous_reader()
            try:
                if opened is not None:  # the delta of the previous snapshot is applied already
                    vectors = opened.vectors
                    vectors.remove(np.fromiter(self._removed, dtype=np.int64))
                    if self._added:
                        vectors.add(
                            np.fromiter(self._added, dtype=np.int64), np.stack([v for v, _ in self._added.values()])
                        )
                else:
                    vectors = VectorIndex.load(self._prev / "vectors.faiss", plan.kind)
                    vectors.apply(plan.vectors)
                if len(vectors) == n:
                    return vectors
            except _READ_ERRORS:
                pass  # rebuild from the store below
        ids, vecs = self._store.vectors(self.gen, dim)
        return VectorIndex.build(ids, vecs, dim)

    def _keyword(self, plan: _Plan | None) -> KeywordIndex:
        if plan is not None:
            try:
                return plan.keyword.merged_into(plan.base)
            except _READ_ERRORS:
                pass  # rebuild from the store below
        return KeywordIndex.build(self._store.passage_ids(self.gen), (toks for _, toks in self._store.tokens(self.gen)))

    def _previous_reader(self) -> LocalReader | None:
        """The caller's open copy of the previous snapshot, if that is what it is."""
        opened = self._opened
        return opened if opened is not None and opened.version == self._prev.name else None

    def _collect(self) -> None:
        """Drop what no kept snapshot needs; never fails the build.

        Kept: the new snapshot, the previous one (CURRENT named it a moment
        ago) and every older one a reader pins, with their stores and the
        store rows they see. Whatever cannot be checked is kept.
        """
        try:
            kept = {self._snap.name: self.store_name}  # snapshot -> its store file
            for snap in _snapshot_dirs(self.index_dir):
                if snap.name == self._snap.name:
                    continue
                if snap.name != f"{self.previous:06d}" and durable.remove_unpinned(snap):
                    continue
                kept[snap.name] = _read_manifest(snap / "manifest.json")["store"]
            for path in self.index_dir.glob("store-*.sqlite"):
                if path.name not in kept.values():
                    durable.remove_store(path)
            self._store.collect(min(int(name) for name, store in kept.items() if store == self.store_name))
        except (OSError, IndexCorrupt, KeyError, ValueError, sqlite3.Error):
            pass
        finally:
            try:
                self._store.close()
            except (OSError, sqlite3.Error):
                pass  # committed all the same; the connection goes with the builder


class _Plan:
    """What an incremental build makes of the previous snapshot: its base, the next deltas, and whether
    they may go beside the base (else they are merged into a new base)."""

    def __init__(self, base_name: str, base: KeywordIndex, keyword: KeywordDelta, vectors: VectorDelta,
                 kind: str, same_kind: bool, n: int) -> None:
        self.base_name, self.base, self.keyword, self.vectors = base_name, base, keyword, vectors
        self.kind, self.same_kind, self.n = kind, same_kind, n

    def delta_fits(self) -> bool:
        """The merge rule: a delta while it changes at most ``MERGE_ROWS`` rows and no more than its base
        holds, the index type stays, and the base keeps what a reader needs to score beside it."""
        rows = len(self.keyword)
        return (self.same_kind and rows <= MERGE_ROWS and rows <= len(self.base) and self.base.can_take_delta()
                and len(self.vectors.ids) == len(self.keyword.ids)
                and len(self.base) - len(self.keyword.removed) + len(self.keyword.ids) == self.n)


# -- files ----------------------------------------------------------------------
def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise TypeError("not a JSON object")
        missing = [key for key in ("generation", "store", "passages", "documents", "files", "vectors")
                   if key not in manifest]
        if missing:
            raise KeyError(missing[0])
    except FileNotFoundError:
        raise IndexCorrupt(f"Index file {path} is missing.", REBUILD) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexCorrupt(f"Index file {path} cannot be read ({short_error(error)}).", REBUILD) from None
    if manifest.get("format") not in _FORMATS:
        raise IndexCorrupt(f"Index {path.parent} was written by another version of qa.", REBUILD)
    return manifest


def _link(source: Path, target: Path) -> None:
    """A new name for a complete, fsynced file of the previous snapshot; a copy where links are refused."""
    try:
        os.link(source, target)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, target)


def _load(loader, path: Path, *args):
    try:
        return loader(path, *args)
    except _READ_ERRORS as error:
        raise IndexCorrupt(f"Index file {path} cannot be read ({short_error(error)}).", REBUILD) from None


def _snapshot_dirs(index_dir: Path) -> list[Path]:
    root = index_dir / "snapshots"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
