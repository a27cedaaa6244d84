"""The index on a Milvus server (or a Milvus Lite file): the same interface as ``local.py``.

Why: the folder index lives on one disk, so a second web process on another
machine cannot share it. With ``QA_MILVUS_URI`` every replica reads one Milvus
(Standalone, Distributed or Zilliz Cloud; Milvus Lite for tests and laptops),
and everything a replica needs is there: passages, documents with their full
text, and the manifest. Only the embedding cache stays local (``cache.sqlite``
in ``QA_INDEX_DIR``, where ``qa build`` runs): it is a speed-up for builds,
never read to answer, and it is what lets ``qa build --milvus-uri URI`` fill
Milvus from an existing folder index without encoding anything again.

Layout, for ``QA_MILVUS_COLLECTION=qa``::

    qa              an alias: names the live passage collection (the atomic switch of a full rebuild)
    qa_b000003      passages: id, document key, offsets, heading, jieba tokens,
                    dense vector (FLAT or HNSW, inner product), sparse BM25 vector
    qa_b000003_meta documents (metadata, then the cleaned text in parts of at most
                    60 kB), one manifest per generation, and "head": the committed generation
    qa_lock         an alias, only while a build runs: names a small collection named after its owner

Builds. A full rebuild (first build, ``--full``, another model or chunking)
writes a new pair of collections ``qa_b<n>`` and switches the alias; a build
killed before that leaves the alias on the old, complete pair, and the next
build drops the orphans. An incremental build writes into the live pair:
rows carry ``added`` (the generation that wrote them) and ``removed`` (the
one that hid them), and a reader pinned to generation ``g`` filters on
``added <= g < removed``, as the SQLite store does; the build becomes live by
one upsert of the "head" row, and a dead build's rows are dropped by the next.

Keyword search. Passages are cut into words by the project's own jieba
(``text.tokenize``), exactly as for bm25s, and stored as sparse vectors of BM25
term weights ``tf / (tf + k1 (1 - b + b dl / avgdl))``, keyed by a 32-bit hash
of the word; the query vector carries each word's IDF, computed from document
frequencies the manifest keeps for its generation. Their inner product is
bm25s's Lucene BM25 score, so both indexes rank alike, and ``doc_freq`` is
exact. Milvus's own BM25 function with its jieba analyzer was not used: it cuts
words with its own jieba port and filters, not the project's search-mode cut and
stop words, and it has no document frequency to read. ``avgdl`` is fixed when the collection is written from
scratch; an incremental build keeps it (``qa build --full`` refreshes it).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
import zlib
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import IndexBusy, IndexCorrupt, IndexMissing, IndexUnavailable, QAError, UsageError
from ..types import DocInfo, Document, Passage
from .interface import IndexReader, checked_addition
from .keyword import B, K1
from .store import EmbeddingCache
from .vectors import IVF_FROM

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["MilvusBackend", "token_id"]

FORMAT = 1
NEVER = 2**62  # ``removed`` of a row no build has hidden
PART_BYTES = 60_000  # document text per row (VARCHAR holds 65,535 bytes)
MAX_VARCHAR = 65_535
HASH_SPACE = 2**32 - 2  # sparse dimensions for words; one more is the placeholder below
EMPTY_DIM = 2**32 - 2  # a passage with no words: Milvus refuses an empty sparse vector
HNSW_FROM = IVF_FROM  # below it dense search is exact (FLAT), as with FAISS
HNSW = {"M": 16, "efConstruction": 200}
HNSW_EF = 128
CONNECT_TIMEOUT = 5.0  # seconds: an unreachable server gives one line, soon
CALL_TIMEOUT = 20.0  # seconds per read or small write
BULK_TIMEOUT = 600.0  # inserts, index building, loading
BATCH = 500  # rows per insert
BATCH_BYTES = 8 << 20  # and at most about this much text per insert
QUERY_LIMIT = 16_384  # the most rows one query returns
LOCK_STALE = 60.0  # seconds without a heartbeat after which a build lock is taken over
HEARTBEAT = 10.0
CACHED_DOCS = 256
REBUILD = "Run: qa build --full to rebuild it."



@functools.lru_cache(maxsize=1 << 20)
def token_id(token: str) -> int:
    """The sparse dimension of a word: stable across processes and builds (Python's hash is not).

    Two words of a collection share a dimension about once per 10^5 pairs (32 bits);
    they then count as one word, as a rare collision in any hashed vocabulary does."""
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little") % HASH_SPACE


def _visible(gen: int) -> str:
    return f"added <= {int(gen)} and removed > {int(gen)}"


# Calls that must not be sent twice: an insert that arrived before the connection broke would
# add its rows twice (Milvus does not deduplicate primary keys on insert).
_NOT_REPEATABLE = frozenset({"insert", "create_collection", "create_alias"})


class MilvusBackend:
    """``IndexBackend`` over one Milvus (``QA_MILVUS_URI``); one client, shared by threads."""

    def __init__(self, settings: Settings) -> None:
        self.uri = settings.milvus_uri
        self.token = settings.milvus_token
        self.db = settings.milvus_db
        self.name = settings.milvus_collection
        self.index_dir = settings.index_dir
        self._client: Any = None
        self._lock = threading.Lock()
        self._live: MilvusReader | None = None

    @property
    def location(self) -> str:
        return f"Milvus collection {self.name} at {self.uri}"

    # -- the connection ------------------------------------------------------------
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    from pymilvus import MilvusClient
                except ImportError:
                    from ..errors import MissingDependency

                    raise MissingDependency.for_module("pymilvus", "pymilvus[milvus-lite]") from None
                # Our own connection (not pymilvus's shared one, whose reconnect back-off outlives a
                # restarted server), and no keep-alive pings while idle: Milvus Lite's gRPC server
                # answers pings every 10 s with GOAWAY "too_many_pings" and drops the connection.
                kwargs: dict[str, Any] = {"uri": self.uri, "timeout": CONNECT_TIMEOUT, "dedicated": True,
                                          "grpc_options": {"grpc.keepalive_permit_without_calls": 0}}
                if self.token:
                    kwargs["token"] = self.token
                if self.db:
                    kwargs["db_name"] = self.db
                for name in list(logging.root.manager.loggerDict):  # pymilvus sets its own levels on import
                    if name.startswith("pymilvus"):
                        logging.getLogger(name).setLevel(logging.CRITICAL)
                try:
                    self._client = MilvusClient(**kwargs)
                except Exception as error:  # noqa: BLE001 - pymilvus raises several kinds; all mean "not now"
                    raise self._unavailable(error) from None
            return self._client

    def call(self, method: str, *args: Any, timeout: float = CALL_TIMEOUT, **kwargs: Any) -> Any:
        """One client call; a lost server becomes ``IndexUnavailable`` (and a fresh client next time)."""
        for attempt in range(2):
            client = self.client()
            try:
                return getattr(client, method)(*args, timeout=timeout, **kwargs)
            except Exception as error:  # noqa: BLE001 - sorted below into "unreachable" and "refused"
                if _lost(error):
                    self._drop_client(client)
                    if attempt == 0 and method not in _NOT_REPEATABLE:
                        # a connection the server closed while idle: one fresh connection; a server
                        # that is down fails again at once
                        continue
                    raise self._unavailable(error) from None
                if attempt == 0 and args and "load()" in str(error):
                    # a restarted server (Milvus Lite) comes back with collections released
                    self.call("load_collection", args[0], timeout=BULK_TIMEOUT)
                    continue
                raise _Refused(error) from None
        raise AssertionError("unreachable")

    def _drop_client(self, client: Any) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is dropped anyway
            pass

    def _unavailable(self, error: BaseException) -> IndexUnavailable:
        return IndexUnavailable(
            f"The Milvus server at {self.uri} cannot be reached ({_short(error)}).",
            "Start it (or check QA_MILVUS_URI and QA_MILVUS_TOKEN), then try again.",
        )

    # -- names ---------------------------------------------------------------------
    def meta(self, base: str) -> str:
        return f"{base}_meta"

    @property
    def lock_name(self) -> str:
        return f"{self.name}_lock"

    def bases(self) -> list[str]:
        """Every pair of collections of this name (either half may be all a dead build left)."""
        pattern = re.compile(re.escape(self.name) + r"(_b\d{6})(_meta)?")
        found = (pattern.fullmatch(c) for c in self.call("list_collections"))
        return sorted({self.name + m.group(1) for m in found if m})

    def target(self) -> str | None:
        """The passage collection the alias names, or None before the first build."""
        try:
            return str(self.call("describe_alias", alias=self.name)["collection_name"])
        except _Refused:
            return None

    def head(self, base: str, strong: bool = True) -> int | None:
        """The committed generation. Per question it is read with the collection's default (Bounded)
        consistency: a Strong read costs 0.1-0.5 s on Milvus Lite at 100,000 passages, and a
        replica then sees another's commit within Milvus's staleness bound (seconds)."""
        level: dict[str, Any] = {"consistency_level": "Strong"} if strong else {}
        rows = self.call("query", self.meta(base), filter='k == "head"', output_fields=["body"], **level)
        return int(json.loads(rows[0]["body"])["generation"]) if rows else None

    # -- IndexBackend ----------------------------------------------------------------
    def live_version(self) -> str | None:
        base = self.target()
        if base is None:
            return None
        try:
            gen = self.head(base, strong=False)
        except _Refused:
            return None
        return None if gen is None else f"{base}:{gen}"

    def live(self) -> MilvusReader:
        version = self.live_version()
        with self._lock:
            live = self._live
        if live is None or version != live.version:
            live = self.open()
            with self._lock:
                self._live = live
        return live

    def open(self) -> MilvusReader:
        for _ in range(3):
            version = self.live_version()
            if version is None:
                raise IndexMissing(f"No index yet in {self.location}.", "Run: qa build")
            base, gen = version.split(":")
            try:
                return MilvusReader(self, base, int(gen))
            except (IndexCorrupt, _Refused) as error:
                if self.live_version() == version:
                    if isinstance(error, _Refused):
                        raise IndexCorrupt(f"The index in {self.location} cannot be read ({error}).", REBUILD) from None
                    raise
        raise IndexCorrupt(f"The index in {self.location} keeps changing while it is opened.",
                           "Wait for builds to finish.")

    def writer(self, fresh: bool = False, previous: IndexReader | None = None) -> MilvusWriter:
        return MilvusWriter(self, fresh=fresh)

    def vector_cache(self) -> EmbeddingCache:
        """Local, beside where builds run (see the module docstring)."""
        return EmbeddingCache(self.index_dir)


class MilvusReader:
    """One committed generation of one collection; thread-safe (the client is)."""

    def __init__(self, backend: MilvusBackend, base: str, gen: int) -> None:
        self._b = backend
        self.base, self.generation = base, gen
        self.version = f"{base}:{gen}"
        # No passage count against the manifest here (the folder index checks its files): a filtered
        # count(*) took 7-10 s on Milvus Lite at 100,000 passages, and the head moves only after
        # every row of its generation is written; a missing row still gives IndexCorrupt when read.
        self.manifest, self._df = _read_manifest(backend, base, gen)
        self._filter = _visible(gen)
        self._docs: OrderedDict[int, Document] = OrderedDict()
        self._docs_lock = threading.Lock()

    # -- searches ----------------------------------------------------------------------
    def search_dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0 or not self.manifest["passages"]:
            return []
        q = np.asarray(qvec, dtype=np.float32).reshape(-1)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.manifest["vectors"]["kind"] == "HNSW":
            params["params"] = {"ef": max(HNSW_EF, int(k))}
        hits = self._b.call("search", self.base, data=[q.tolist()], anns_field="dense", limit=int(k),
                            filter=self._filter, search_params=params, output_fields=["id"])
        return [(int(h["id"]), float(h["distance"])) for h in hits[0]]

    def search_keyword(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        query = self.query_vector(tokens)
        if k <= 0 or not query:
            return []
        hits = self._b.call("search", self.base, data=[query], anns_field="sparse", limit=int(k),
                            filter=self._filter, output_fields=["id"],
                            search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}})
        return [(int(h["id"]), float(h["distance"])) for h in hits[0] if h["distance"] > 0]

    def query_vector(self, tokens: Sequence[str]) -> dict[int, float]:
        """Each known word's IDF (bm25s's Lucene variant) times its count in the query."""
        n = self.manifest["passages"]
        out: dict[int, float] = {}
        for token, count in Counter(tokens).items():
            df = self._df.get(token, 0)
            if df:
                key = token_id(token)
                out[key] = out.get(key, 0.0) + count * math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        return out

    def doc_freq(self, token: str) -> int:
        return self._df.get(token, 0)

    def passage_count(self) -> int:
        return int(self.manifest["passages"])

    def describe(self) -> dict[str, Any]:
        return {"engine": "Milvus", "dense": self.manifest["vectors"]["kind"], "passages": self.passage_count(),
                "location": self._b.location}

    # -- lookups -------------------------------------------------------------------------
    def passages(self, ids: Sequence[int]) -> list[tuple[Passage, Document]]:
        wanted = [int(i) for i in ids]
        rows: dict[int, dict] = {}
        fields = ["id", "doc_key", "doc_id", "ordinal", "start", "end", "heading"]
        levels: tuple[dict[str, Any], ...] = ({}, {"consistency_level": "Strong"})
        for level in levels:  # rows never change once visible
            for chunk in _chunks([i for i in wanted if i not in rows], 1000):
                for row in self._b.call("query", self.base, filter=f"id in {chunk}", output_fields=fields, **level):
                    rows[int(row["id"])] = row
            if len(rows) == len(set(wanted)):
                break
        missing = [i for i in wanted if i not in rows]
        if missing:
            raise IndexCorrupt(f"Passage {missing[0]} is missing from {self._b.location}.", REBUILD)
        docs = self._documents_by_key({int(r["doc_key"]) for r in rows.values()})
        out = []
        for pid in wanted:
            row = rows[pid]
            doc = docs[int(row["doc_key"])]
            start, end = int(row["start"]), int(row["end"])
            out.append((Passage(doc.doc_id, int(row["ordinal"]), doc.text[start:end], start, end,
                                row["heading"] or None), doc))
        return out

    def documents(self) -> list[DocInfo]:
        rows = _query_all(self._b, self._b.meta(self.base), f'kind == "doc" and part == 0 and {self._filter}',
                          ["body"])
        infos = []
        for row in rows:
            m = json.loads(row["body"])
            infos.append(DocInfo(m["doc_id"], m["title"], m["source"], m["date"], m["url"], m["path"],
                                 m["passages"], m["content_hash"]))
        return sorted(infos, key=lambda info: info.doc_id)

    def document(self, doc_id: str) -> Document:
        rows = self._b.call("query", self._b.meta(self.base),
                            filter=f'kind == "doc" and doc_id == {json.dumps(doc_id)} and part == 0 and {self._filter}',
                            output_fields=["doc_key"])
        if not rows:
            raise UsageError(f"No document with id {doc_id}.", "List the ids with: qa docs")
        key = int(rows[0]["doc_key"])
        return self._documents_by_key({key})[key]

    def _documents_by_key(self, keys: set[int]) -> dict[int, Document]:
        found: dict[int, Document] = {}
        with self._docs_lock:
            for key in keys:
                if key in self._docs:
                    found[key] = self._docs[key]
        todo = sorted(keys - set(found))
        if todo:
            loaded = _load_documents(self._b, self.base, todo, strong=False)
            if set(loaded) != set(todo):  # not seen yet within the staleness bound: ask again, strongly
                loaded.update(_load_documents(self._b, self.base, sorted(set(todo) - set(loaded))))
            if set(loaded) != set(todo):
                raise IndexCorrupt(f"A document is missing from {self._b.location}.", REBUILD)
            found.update(loaded)
            with self._docs_lock:
                for key, doc in loaded.items():
                    self._docs[key] = doc
                while len(self._docs) > CACHED_DOCS:  # bounded: a 10 MB article must not pin memory forever
                    self._docs.popitem(last=False)
        return found

    def close(self) -> None:
        """Nothing to release: the connection belongs to the backend."""

    def __enter__(self) -> MilvusReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MilvusWriter:
    """One build (see the module docstring for what is written where and when it goes live)."""

    def __init__(self, backend: MilvusBackend, fresh: bool = False) -> None:
        self._b = backend
        self.fresh = fresh
        self._lock: _BuildLock | None = None
        self._committed = False

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> MilvusWriter:
        self._lock = _BuildLock(self._b).take()
        try:
            self._start()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                self._discard()
        except Exception:  # noqa: BLE001 - the next build cleans up what this one could not
            pass
        finally:
            if self._lock is not None:
                self._lock.release()

    def _start(self) -> None:
        b = self._b
        live = b.target()
        try:
            head = b.head(live) if live else None
        except _Refused:  # the alias names a damaged pair: a full rebuild replaces it
            head = None
        keep = {live, _manifest_of(b, live, head).get("previous_base")} if live and head else {live}
        for orphan in b.bases():  # collections of full rebuilds that died before the switch
            if orphan not in keep:
                b.call("drop_collection", b.meta(orphan))
                b.call("drop_collection", orphan)
        self._pending: dict[str, tuple[Document, list[dict]]] = {}  # doc_id -> added by this build
        self._hidden: dict[str, int] = {}  # doc_id -> doc_key of a live document this build removes
        self._removed_passages = 0
        self._df_delta: Counter[str] = Counter()
        self._tokens_delta = 0
        self._pending_df_undo: dict[str, Counter[str]] = {}
        self._pending_tokens_undo: dict[str, int] = {}
        if live and head is not None and not self.fresh:
            self.base, self.previous = live, head
            manifest, df = _read_manifest(b, live, head)
            if b.call("query", b.meta(live), filter='k == "pending"', output_fields=["k"],
                      consistency_level="Strong"):
                self._discard_after(head)  # a build died after writing: scanning for its rows costs seconds
            self.gen = head + 1
            self._mark("pending")
            self._base_manifest: dict[str, Any] | None = manifest
            self._df = df
            self.dim: int | None = manifest["vectors"]["dim"]
            self._next_id, self._next_key = manifest["next_id"], manifest["next_doc_key"]
            self._live_docs = {row["doc_id"]: (int(row["doc_key"]), row["hash"], row["path"])
                               for row in self._doc_rows(head)}
        else:
            numbers = [int(name.rsplit("_b", 1)[1]) for name in b.bases()]
            self.base = f"{b.name}_b{max(numbers, default=0) + 1:06d}"
            self.previous, self.gen = 0, 1
            self._previous_base = live if head else None
            self._base_manifest = None
            self._df = {}
            self.dim = None
            self._next_id, self._next_key = 1, 1
            self._live_docs = {}
            self._create(self.base)

    def _doc_rows(self, gen: int) -> list[dict]:
        rows = _query_all(self._b, self._b.meta(self.base), f'kind == "doc" and part == 0 and {_visible(gen)}',
                          ["doc_key", "body"])
        out = []
        for row in rows:
            m = json.loads(row["body"])
            out.append({"doc_id": m["doc_id"], "doc_key": row["doc_key"], "hash": m["content_hash"],
                        "path": m["path"]})
        return out

    def _create(self, base: str) -> None:
        """An empty pair of collections; the passage one gets its indexes at commit (then its size is known)."""
        from pymilvus import DataType, MilvusClient

        b = self._b
        passages = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                              description=f"qa passages, format {FORMAT}")
        for name, kind, extra in (
            ("id", DataType.INT64, {"is_primary": True}),
            ("doc_key", DataType.INT64, {}),
            ("doc_id", DataType.VARCHAR, {"max_length": 1024}),
            ("ordinal", DataType.INT64, {}),
            ("start", DataType.INT64, {}),
            ("end", DataType.INT64, {}),
            ("heading", DataType.VARCHAR, {"max_length": MAX_VARCHAR}),
            ("tokens", DataType.VARCHAR, {"max_length": MAX_VARCHAR}),
            ("added", DataType.INT64, {}),
            ("removed", DataType.INT64, {}),
            ("sparse", DataType.SPARSE_FLOAT_VECTOR, {}),
        ):
            passages.add_field(name, kind, **extra)
        self._passage_schema = passages  # the dense field is added once its dimension is known
        meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                          description=f"qa documents and manifests, format {FORMAT}")
        for name, kind, extra in (
            ("k", DataType.VARCHAR, {"is_primary": True, "max_length": 256}),
            ("kind", DataType.VARCHAR, {"max_length": 16}),
            ("doc_key", DataType.INT64, {}),
            ("doc_id", DataType.VARCHAR, {"max_length": 1024}),
            ("part", DataType.INT64, {}),
            ("added", DataType.INT64, {}),
            ("removed", DataType.INT64, {}),
            ("body", DataType.VARCHAR, {"max_length": MAX_VARCHAR}),
            ("v", DataType.FLOAT_VECTOR, {"dim": 2}),  # Milvus wants a vector in every collection
        ):
            meta.add_field(name, kind, **extra)
        index = MilvusClient.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        b.call("create_collection", b.meta(base), schema=meta, index_params=index, timeout=BULK_TIMEOUT)

    # -- what the pipeline calls ------------------------------------------------------------
    def existing(self) -> dict[str, str]:
        out = {doc_id: h for doc_id, (_, h, _) in self._live_docs.items() if doc_id not in self._hidden}
        out.update({doc_id: doc.content_hash for doc_id, (doc, _) in self._pending.items()})
        return out

    def document_path(self, doc_id: str) -> str | None:
        if doc_id in self._pending:
            return self._pending[doc_id][0].path
        live = self._live_docs.get(doc_id)
        return None if live is None or doc_id in self._hidden else live[2]

    def passage_count(self) -> int:
        base = self._base_manifest["passages"] if self._base_manifest else 0
        return base - self._removed_passages + sum(len(rows) for _, rows in self._pending.values())

    def remove_document(self, doc_id: str) -> None:
        if self._pending.pop(doc_id, None) is not None:
            for token, count in self._pending_df_undo.pop(doc_id, Counter()).items():
                self._df_delta[token] -= count
            self._tokens_delta -= self._pending_tokens_undo.pop(doc_id, 0)
            return
        live = self._live_docs.get(doc_id)
        if live is None or doc_id in self._hidden:
            return
        key = live[0]
        rows = _query_all(self._b, self.base, f"doc_key == {key}", _PASSAGE_FIELDS)
        for row in rows:
            tokens = _split(row["tokens"])
            self._df_delta.subtract(set(tokens))
            self._tokens_delta -= len(tokens)
            row["removed"] = self.gen
        self._upsert(self.base, rows)
        parts = _query_all(self._b, self._b.meta(self.base), f'kind == "doc" and doc_key == {key}', _META_FIELDS)
        for row in parts:
            row["removed"] = self.gen
        self._upsert(self._b.meta(self.base), parts)
        self._hidden[doc_id] = key
        self._removed_passages += len(rows)

    def add_document(
        self, doc: Document, passages: Sequence[Passage], vectors: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> None:
        vectors = checked_addition(doc, passages, vectors, tokens, self.dim)
        if len(vectors):
            self.dim = int(vectors.shape[1])
        self.remove_document(doc.doc_id)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
        rows = []
        df: Counter[str] = Counter()
        total = 0
        # kept until commit (a new collection's avgdl is known only then): compact arrays, not dicts
        for p, vec, toks in zip(passages, vectors, tokens, strict=True):
            joined = "\x1f".join(t.replace("\x1f", "") for t in toks)
            heading = p.heading or ""
            if len(joined.encode("utf-8")) > MAX_VARCHAR or len(heading.encode("utf-8")) > MAX_VARCHAR:
                raise UsageError(f"{doc.doc_id}: passage {p.ordinal} is too long for a Milvus text field.",
                                 "Use a smaller QA_CHUNK_MAX.")
            rows.append({"id": self._next_id, "doc_id": doc.doc_id, "ordinal": p.ordinal, "start": p.start,
                         "end": p.end, "heading": heading, "tokens": joined, "added": self.gen, "removed": NEVER,
                         "dense": vec, "terms": _term_counts(toks), "dl": len(toks)})
            self._next_id += 1
            df.update(set(toks))
            total += len(toks)
        self._pending[doc.doc_id] = (doc, rows)
        self._df_delta.update(df)
        self._tokens_delta += total
        self._pending_df_undo[doc.doc_id] = df
        self._pending_tokens_undo[doc.doc_id] = total

    def commit(self, manifest: Mapping[str, Any]) -> None:
        """Write the added rows, the new manifest, then move "head" (and, for a new collection, the alias)."""
        b = self._b
        dim = self.dim or manifest.get("dim")
        if not dim:
            raise ValueError("the vector dimension is unknown: add a document or give manifest['dim']")
        n = self.passage_count()
        old = self._base_manifest
        tokens_total = (old["tokens"] if old else 0) + self._tokens_delta
        avgdl = old["avgdl"] if old else (tokens_total / n if n else 1.0)
        df = dict(self._df)
        for token, delta in self._df_delta.items():
            value = df.get(token, 0) + delta
            if value > 0:
                df[token] = value
            else:
                df.pop(token, None)
        if old is None:
            self._create_passages(int(dim))
        rows, docs = [], []
        for doc, passages in self._pending.values():
            key = self._next_key
            self._next_key += 1
            for row in passages:  # converted batch by batch: 100,000 vectors as Python lists would take GBs
                (dims, counts), dl = row["terms"], row["dl"]
                out = {k: v for k, v in row.items() if k not in ("terms", "dl")}
                out.update(doc_key=key, sparse=_bm25_vector(dims, counts, dl, avgdl), dense=row["dense"].tolist())
                rows.append(out)
            docs += _document_rows(doc, key, len(passages), self.gen)
            if len(rows) >= BATCH:
                self._insert(self.base, rows)
                rows = []
        self._insert(self.base, rows)
        self._insert(b.meta(self.base), docs)
        kind = old["vectors"]["kind"] if old else ("FLAT" if n < HNSW_FROM else "HNSW")
        full = dict(manifest)
        full.update(format=FORMAT, generation=self.gen, passages=n, documents=len(self.existing()),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), vectors={"kind": kind, "dim": int(dim)},
                    tokens=tokens_total, avgdl=avgdl, next_id=self._next_id, next_doc_key=self._next_key,
                    removed_documents=len(self._hidden),
                    previous_base=old.get("previous_base") if old else self._previous_base,
                    libraries={"pymilvus": _pymilvus_version()})
        self._insert(b.meta(self.base), _manifest_rows(full, df, self.gen))
        if old is None:
            self._index(kind)
        head = {"k": "head", "kind": "head", "doc_key": 0, "doc_id": "", "part": 0, "added": 0, "removed": NEVER,
                "body": json.dumps({"generation": self.gen}), "v": [0.0, 0.0]}
        b.call("upsert", b.meta(self.base), [head])
        self._mark(None)
        if old is None:
            if b.target() is None:
                b.call("create_alias", self.base, alias=b.name)
            else:
                b.call("alter_alias", self.base, alias=b.name)
        self._committed = True
        self._collect()

    # -- helpers -------------------------------------------------------------------------------
    def _create_passages(self, dim: int) -> None:
        from pymilvus import DataType

        self._passage_schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        self._b.call("create_collection", self.base, schema=self._passage_schema, timeout=BULK_TIMEOUT)

    def _index(self, kind: str) -> None:
        """Indexes after the rows are in (built once, not per insert), then load to serve."""
        from pymilvus import MilvusClient

        b = self._b
        b.call("flush", self.base, timeout=BULK_TIMEOUT)
        # sealed, the documents answer lookups in ~20 ms instead of ~0.5 s on Milvus Lite at 100,000 passages
        b.call("flush", b.meta(self.base), timeout=BULK_TIMEOUT)
        index = MilvusClient.prepare_index_params()
        if kind == "HNSW":
            index.add_index("dense", index_type="HNSW", metric_type="IP", params=HNSW)
        else:
            index.add_index("dense", index_type="FLAT", metric_type="IP")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                        params={"drop_ratio_build": 0.0})
        for scalar in ("added", "removed", "doc_key"):  # every filter names them
            index.add_index(scalar, index_type="INVERTED")
        b.call("create_index", self.base, index, timeout=BULK_TIMEOUT)
        b.call("load_collection", self.base, timeout=BULK_TIMEOUT)

    def _insert(self, collection: str, rows: list[dict], method: str = "insert") -> None:
        if rows:
            self._b.call("has_collection", collection)  # reconnects, if need be, before a call that cannot
        for chunk in _batches(rows):
            self._b.call(method, collection, chunk, timeout=BULK_TIMEOUT)
            if self._lock is not None:
                self._lock.beat()

    def _upsert(self, collection: str, rows: list[dict]) -> None:
        self._insert(collection, rows, "upsert")

    def _discard_after(self, gen: int) -> None:
        """Undo what builds after ``gen`` wrote and never made live (they died, or gave up)."""
        b = self._b
        for collection, fields in ((self.base, _PASSAGE_FIELDS), (b.meta(self.base), _META_FIELDS)):
            b.call("delete", collection, filter=f"added > {gen}")
            hidden = _query_all(b, collection, f"removed > {gen} and removed < {NEVER}", fields)
            for row in hidden:
                row["removed"] = NEVER
            self._upsert(collection, hidden)

    def _discard(self) -> None:
        if self._base_manifest is None:
            self._b.call("drop_collection", self._b.meta(self.base))
            self._b.call("drop_collection", self.base)
        else:
            self._discard_after(self.previous)
            self._mark(None)

    def _mark(self, state: str | None) -> None:
        """The "pending" row exists while an incremental build may have written rows not yet live."""
        meta = self._b.meta(self.base)
        if state is None:
            self._b.call("delete", meta, filter='k == "pending"')
        else:
            self._b.call("upsert", meta, [{"k": "pending", "kind": "pending", "doc_key": 0, "doc_id": "", "part": 0,
                                           "added": 0, "removed": NEVER, "body": "{}", "v": [0.0, 0.0]}])

    def _collect(self) -> None:
        """Drop what neither this generation nor the one before can see; never fails the build."""
        b = self._b
        try:
            if self._base_manifest is None:
                keep = {self.base, self._previous_base}
                for base in b.bases():
                    if base not in keep:
                        b.call("drop_collection", b.meta(base))
                        b.call("drop_collection", base)
            else:
                if self._base_manifest.get("removed_documents", 1):  # rows the previous build hid
                    b.call("delete", self.base, filter=f"removed <= {self.previous}")
                    b.call("delete", b.meta(self.base), filter=f"removed <= {self.previous}")
                b.call("delete", b.meta(self.base), filter=f'kind == "manifest" and added < {self.previous}')
        except Exception:  # noqa: BLE001 - leftovers only cost space; the next build tries again
            pass

_PASSAGE_FIELDS = ["id", "doc_key", "doc_id", "ordinal", "start", "end", "heading", "tokens", "added", "removed",
                   "dense", "sparse"]
_META_FIELDS = ["k", "kind", "doc_key", "doc_id", "part", "added", "removed", "body", "v"]


_LOCK_OWNER = re.compile(r"_lk_([0-9a-f]+)_(\d+)_(\d+)(?:_[0-9a-f]+)?$")


class _BuildLock:
    """One build at a time across machines: an alias, which Milvus lets only one caller create.

    Each build makes a small collection named after itself (host, process, start
    time, a random tail) and then tries to point the alias ``<name>_lock`` at it; a second build
    finds the alias taken and reads the owner from the name. A heartbeat row keeps
    the lock fresh while the build runs. A lock whose owner is gone (a dead process
    on this host, or no heartbeat for ``LOCK_STALE`` seconds) is taken over, so a
    killed build does not block the next one for long.
    """

    def __init__(self, backend: MilvusBackend) -> None:
        self._b = backend
        self.host, self.pid, self.since = socket.gethostname(), os.getpid(), int(time.time())
        # the random tail keeps two builds of one process in the same second apart (a web rebuild
        # beside a CLI build in one interpreter, or a test); only the alias decides who holds the lock
        self.own = f"{backend.name}_lk_{_host_tag(self.host)}_{self.pid}_{self.since}_{secrets.token_hex(4)}"
        self._held = False
        self._last = 0.0
        self._stop = threading.Event()

    @property
    def alias(self) -> str:
        return self._b.lock_name

    def take(self) -> _BuildLock:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("k", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("beat", DataType.DOUBLE)
        schema.add_field("host", DataType.VARCHAR, max_length=256)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
        index = MilvusClient.prepare_index_params()
        index.add_index("v", index_type="FLAT", metric_type="L2")
        self._b.call("create_collection", self.own, schema=schema, index_params=index)
        self._held = True
        self.beat(force=True)
        holder = None
        for _ in range(3):
            try:
                self._b.call("create_alias", self.own, alias=self.alias)
                threading.Thread(target=self._heartbeat, daemon=True).start()
                return self
            except _Refused:
                pass
            holder = self._holder()
            if holder is not None and self._stale(holder):
                self._drop(holder["collection"])  # a dead build's lock
        self.release()
        who = f"process {holder['pid']} on {holder['host']}" if holder else "another process"
        raise IndexBusy(f"Another build of {self._b.location} is running ({who}).",
                        "Wait for it to finish, then try again.")

    def _holder(self) -> dict | None:
        try:
            name = str(self._b.call("describe_alias", alias=self.alias)["collection_name"])
            owner = _LOCK_OWNER.search(name)
            if owner is None:
                raise ValueError(name)
            tag, pid, since = owner.groups()
            rows = self._b.call("query", name, filter='k == "beat"', output_fields=["beat", "host"],
                                consistency_level="Strong")
        except (_Refused, ValueError, KeyError):
            return None
        beat = float(rows[0]["beat"]) if rows else float(since)
        host = rows[0]["host"] if rows else f"host {tag}"
        return {"collection": name, "host": host, "pid": int(pid), "beat": beat, "tag": tag}

    def _stale(self, holder: dict) -> bool:
        if holder["tag"] == _host_tag(self.host):
            try:
                os.kill(int(holder["pid"]), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError):
                pass
        return time.time() - holder["beat"] > LOCK_STALE

    def _drop(self, collection: str) -> None:
        try:
            self._b.call("drop_alias", alias=self.alias)
        except _Refused:
            pass
        try:
            self._b.call("drop_collection", collection)
        except _Refused:
            pass

    def beat(self, force: bool = False) -> None:
        if self._held and (force or time.monotonic() - self._last > HEARTBEAT / 2):
            self._last = time.monotonic()
            try:
                self._b.call("upsert", self.own, [{"k": "beat", "beat": time.time(), "host": self.host[:200],
                                                   "v": [0.0, 0.0]}])
            except (_Refused, IndexUnavailable):
                pass  # the next beat tries again

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            self.beat()

    def release(self) -> None:
        self._stop.set()
        if self._held:
            self._held = False
            try:
                holder = self._holder()
                if holder is not None and holder["collection"] == self.own:
                    self._b.call("drop_alias", alias=self.alias)
                self._b.call("drop_collection", self.own)
            except (_Refused, IndexUnavailable):
                pass  # it goes stale and the next build takes it over


def _host_tag(host: str) -> str:
    return hashlib.blake2b(host.encode("utf-8"), digest_size=4).hexdigest()


# -- rows --------------------------------------------------------------------------------------
def _term_counts(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A passage's distinct sparse dimensions and how often each occurs."""
    if not tokens:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    ids = np.fromiter((token_id(t) for t in tokens), dtype=np.int64, count=len(tokens))
    dims, counts = np.unique(ids, return_counts=True)
    return dims.astype(np.uint32), counts.astype(np.float32)


def _bm25_vector(dims: np.ndarray, counts: np.ndarray, dl: int, avgdl: float) -> dict[int, float]:
    """bm25s's Lucene term weight ``tf / (tf + k1 (1 - b + b dl / avgdl))``, without the IDF (the query has it)."""
    if not len(dims):
        return {EMPTY_DIM: 1e-9}  # Milvus refuses an empty sparse vector; no query names this dimension
    norm = K1 * ((1 - B) + B * dl / (avgdl or 1.0))
    return dict(zip(dims.tolist(), (counts / (counts + norm)).tolist(), strict=True))


def _split_text(text: str, limit: int = PART_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-8 bytes, cut between characters."""
    data = text.encode("utf-8")
    parts, start = [], 0
    while start < len(data):
        end = min(len(data), start + limit)
        while end < len(data) and data[end] & 0xC0 == 0x80:  # not inside a character
            end -= 1
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


def _document_rows(doc: Document, key: int, passages: int, gen: int) -> list[dict]:
    meta = {"doc_id": doc.doc_id, "path": doc.path, "title": doc.title, "content_hash": doc.content_hash,
            "source": doc.source, "date": doc.date, "url": doc.url, "passages": passages}
    bodies = [json.dumps(meta, ensure_ascii=False), *_split_text(doc.text)]
    if len(bodies[0].encode("utf-8")) > MAX_VARCHAR:
        raise UsageError(f"{doc.doc_id}: the title or path is too long for a Milvus text field.",
                         "Shorten the file name or the title.")
    return [{"k": f"d:{key}:{part}", "kind": "doc", "doc_key": key, "doc_id": doc.doc_id, "part": part,
             "added": gen, "removed": NEVER, "body": body, "v": [0.0, 0.0]} for part, body in enumerate(bodies)]


def _load_documents(backend: MilvusBackend, base: str, keys: list[int], strong: bool = True) -> dict[int, Document]:
    parts: dict[int, list[tuple[int, str]]] = {}
    for chunk in _chunks(keys, 100):
        for row in _query_all(backend, backend.meta(base), f'kind == "doc" and doc_key in {chunk}',
                              ["doc_key", "part", "body"], strong):
            parts.setdefault(int(row["doc_key"]), []).append((int(row["part"]), row["body"]))
    out = {}
    for key, pieces in parts.items():
        pieces.sort()
        m = json.loads(pieces[0][1])
        out[key] = Document(doc_id=m["doc_id"], path=m["path"], title=m["title"],
                            text="".join(body for _, body in pieces[1:]), content_hash=m["content_hash"],
                            source=m["source"], date=m["date"], url=m["url"])
    return out


def _manifest_rows(manifest: Mapping[str, Any], df: Mapping[str, int], gen: int) -> list[dict]:
    """The manifest, then the document frequencies (compressed JSON in base64, in parts)."""
    blob = base64.b64encode(zlib.compress(json.dumps(df, ensure_ascii=False).encode("utf-8"), 6)).decode("ascii")
    bodies = [json.dumps(dict(manifest, df_parts=0), ensure_ascii=False)]
    pieces = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)]
    bodies[0] = json.dumps(dict(manifest, df_parts=len(pieces)), ensure_ascii=False)
    bodies += pieces
    return [{"k": f"m:{gen}:{part}", "kind": "manifest", "doc_key": 0, "doc_id": "", "part": part, "added": gen,
             "removed": NEVER, "body": body, "v": [0.0, 0.0]} for part, body in enumerate(bodies)]


def _manifest_of(backend: MilvusBackend, base: str, gen: int | None) -> dict[str, Any]:
    if gen is None:
        return {}
    rows = backend.call("query", backend.meta(base), filter=f'k == "m:{int(gen)}:0"', output_fields=["body"],
                        consistency_level="Strong")
    return json.loads(rows[0]["body"]) if rows else {}


def _read_manifest(backend: MilvusBackend, base: str, gen: int) -> tuple[dict[str, Any], dict[str, int]]:
    rows = _query_all(backend, backend.meta(base), f'kind == "manifest" and added == {int(gen)}', ["part", "body"])
    rows.sort(key=lambda r: int(r["part"]))
    try:
        manifest = json.loads(rows[0]["body"])
        if manifest.get("format") != FORMAT:
            raise IndexCorrupt(f"The index in {backend.location} was written by another version of qa.", REBUILD)
        if len(rows) != manifest["df_parts"] + 1:
            raise ValueError(f"{len(rows) - 1} of {manifest['df_parts']} parts")
        blob = "".join(r["body"] for r in rows[1:])
        df = json.loads(zlib.decompress(base64.b64decode(blob)).decode("utf-8")) if blob else {}
    except (IndexError, KeyError, ValueError, TypeError, zlib.error) as error:
        raise IndexCorrupt(f"The manifest in {backend.location} cannot be read ({_short(error)}).", REBUILD) from None
    return manifest, df


def _query_all(backend: MilvusBackend, collection: str, filter: str, fields: list[str],
               strong: bool = True) -> list[dict]:
    """Every matching row: one query, or Milvus's iterator when there are more than one query returns."""
    level: dict[str, Any] = {"consistency_level": "Strong"} if strong else {}
    rows = backend.call("query", collection, filter=filter, output_fields=fields, limit=QUERY_LIMIT, **level)
    if len(rows) < QUERY_LIMIT:
        return [dict(r) for r in rows]
    out: list[dict] = []
    iterator = backend.call("query_iterator", collection, filter=filter, output_fields=fields, batch_size=4096,
                            timeout=BULK_TIMEOUT)
    try:
        while True:
            page = iterator.next()
            if not page:
                return out
            out += [dict(r) for r in page]
    except Exception as error:  # noqa: BLE001 - the iterator calls the server itself
        if _lost(error):
            raise backend._unavailable(error) from None
        raise _Refused(error) from None
    finally:
        iterator.close()


def _batches(rows: list[dict]) -> Iterable[list[dict]]:
    """Rows in inserts of at most ``BATCH`` rows and about ``BATCH_BYTES`` of text (a gRPC message is bounded)."""
    batch: list[dict] = []
    size = 0
    for row in rows:
        weight = len(row.get("body", "")) * 3 + len(row.get("tokens", "")) * 3 + 2048
        if batch and (len(batch) >= BATCH or size + weight > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += weight
    if batch:
        yield batch


def _split(joined: str) -> list[str]:
    return joined.split("\x1f") if joined else []


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Refused(QAError):
    """The server answered but refused (no such alias or collection, a bad request).

    Mostly caught where a refusal has a meaning (no alias: no index yet); one that
    reaches the user is still a single line.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"Milvus refused a request ({_short(error)}).",
                         "Check QA_MILVUS_* and the server's version; qa build --full writes the collection anew.")
        self.error = error


def _lost(error: BaseException) -> bool:
    """Whether an exception means the server is unreachable (rather than a refusal)."""
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("unavailable", "connect", "deadline", "timeout", "timed out",
                                         "socket", "channel", "refused", "closed", "not ready"))


def _short(error: BaseException) -> str:
    text = str(getattr(error, "message", "") or error).strip().splitlines() or [type(error).__name__]
    return text[-1][:200]


def _pymilvus_version() -> str:
    import pymilvus

    return str(getattr(pymilvus, "__version__", "?"))

