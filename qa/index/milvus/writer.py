"""Writing one build of a Milvus index: a new pair of collections, or a new generation in the live pair.

See the package docstring (``__init__.py``) for what is written where and when it goes live.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import UsageError
from ...types import Document, Passage
from ..common import FORMAT, WriterBase, join_tokens, normalised, split_tokens
from .client import BATCH, BULK_TIMEOUT, Connection, Refused, batches, pymilvus_version
from .lock import BuildLock
from .schema import (
    HNSW_FROM, MAX_VARCHAR, META_FIELDS, NEVER, PASSAGE_FIELDS, bm25_vector, create_meta, document_rows,
    manifest_of, manifest_rows, meta_row, passage_indexes, passage_schema, read_manifest, term_counts, visible,
)

# How long the pair a full rebuild replaced is kept: a question that took it just before the alias
# moved reads it for seconds at most (each call times out after 20 s), and every question after the
# switch opens the new pair. The first build to start once this has passed drops it; the margin also
# covers clocks of build machines that differ by a minute or two.
PREVIOUS_GRACE = 300.0  # seconds

class MilvusWriter(WriterBase):
    """One build (see the package docstring for what is written where and when it goes live)."""

    def __init__(self, backend: Connection, fresh: bool = False) -> None:
        self._b = backend
        self.fresh = fresh
        self._lock: BuildLock | None = None
        self._committed = False

    # -- lifecycle (the ``with`` block is ``WriterBase``'s) ------------------------------
    def _acquire(self) -> None:
        self._lock = BuildLock(self._b).take()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _start(self) -> None:
        b = self._b
        live = b.target()
        try:
            head = b.head(live) if live else None
        except Refused:  # the alias names a damaged pair: a full rebuild replaces it
            head = None
        manifest = manifest_of(b, live, head) if live and head else {}
        # the pair the last full rebuild replaced, while a question may still be reading it (``PREVIOUS_GRACE``)
        replaced = manifest.get("previous_replaced")
        recent = replaced is not None and time.time() - float(replaced) < PREVIOUS_GRACE
        self._kept: tuple[str | None, float | None] = (manifest["previous_base"], replaced) if recent else (None, None)
        for orphan in b.bases():  # the expired previous pair, and pairs of full rebuilds that died before the switch
            if orphan not in (live, self._kept[0]):
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
            manifest, df = read_manifest(b, live, head)
            if b.call("query", b.meta(live), filter='k == "pending"', output_fields=["k"],
                      consistency_level="Strong"):
                self._discard_after(head)  # a build died after writing: scanning for its rows costs seconds
            self.gen = head + 1
            self._mark("pending")
            self._base_manifest: dict[str, Any] | None = manifest
            self._df = df
            self.dim = manifest["vectors"]["dim"]
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
        rows = self._b.query_all(self._b.meta(self.base), f'kind == "doc" and part == 0 and {visible(gen)}',
                                 ["doc_key", "body"])
        out = []
        for row in rows:
            m = json.loads(row["body"])
            out.append({"doc_id": m["doc_id"], "doc_key": row["doc_key"], "hash": m["content_hash"],
                        "path": m["path"]})
        return out

    def _create(self, base: str) -> None:
        """An empty pair of collections; the passage one gets its indexes at commit (then its size is known)."""
        self._passage_schema = passage_schema()  # the dense field is added once its dimension is known
        create_meta(self._b, self._b.meta(base))

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
        rows = self._b.query_all(self.base, f"doc_key == {key}", PASSAGE_FIELDS)
        for row in rows:
            tokens = split_tokens(row["tokens"])
            self._df_delta.subtract(set(tokens))
            self._tokens_delta -= len(tokens)
            row["removed"] = self.gen
        self._upsert(self.base, rows)
        parts = self._b.query_all(self._b.meta(self.base), f'kind == "doc" and doc_key == {key}', META_FIELDS)
        for row in parts:
            row["removed"] = self.gen
        self._upsert(self._b.meta(self.base), parts)
        self._hidden[doc_id] = key
        self._removed_passages += len(rows)

    def add_document(
        self, doc: Document, passages: Sequence[Passage], vectors: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> None:
        vectors = normalised(self._admit(doc, passages, vectors, tokens))
        rows = []
        df: Counter[str] = Counter()
        total = 0
        # kept until commit (a new collection's avgdl is known only then): compact arrays, not dicts
        for p, vec, toks in zip(passages, vectors, tokens, strict=True):
            joined = join_tokens(toks)
            heading = p.heading or ""
            if len(joined.encode("utf-8")) > MAX_VARCHAR or len(heading.encode("utf-8")) > MAX_VARCHAR:
                raise UsageError(f"{doc.doc_id}: passage {p.ordinal} is too long for a Milvus text field.",
                                 "Use a smaller QA_CHUNK_MAX.")
            rows.append({"id": self._next_id, "doc_id": doc.doc_id, "ordinal": p.ordinal, "start": p.start,
                         "end": p.end, "heading": heading, "tokens": joined, "added": self.gen, "removed": NEVER,
                         "dense": vec, "terms": term_counts(toks), "dl": len(toks)})
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
        dim = self._commit_dim(manifest)
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
            self._create_passages(dim)
        rows, docs = [], []
        for doc, passages in self._pending.values():
            key = self._next_key
            self._next_key += 1
            for row in passages:  # converted batch by batch: 100,000 vectors as Python lists would take GBs
                (dims, counts), dl = row["terms"], row["dl"]
                out = {k: v for k, v in row.items() if k not in ("terms", "dl")}
                out.update(doc_key=key, sparse=bm25_vector(dims, counts, dl, avgdl), dense=row["dense"].tolist())
                rows.append(out)
            docs += document_rows(doc, key, len(passages), self.gen)
            if len(rows) >= BATCH:
                self._insert(self.base, rows)
                rows = []
        self._insert(self.base, rows)
        self._insert(b.meta(self.base), docs)
        kind = old["vectors"]["kind"] if old else ("FLAT" if n < HNSW_FROM else "HNSW")
        if old is None:
            self._index(kind)  # before the manifest, so that its time is the switch's, not minutes before
        previous, replaced = self._kept if old else (self._previous_base, time.time())
        full = dict(manifest)
        full.update(format=FORMAT, generation=self.gen, passages=n, documents=len(self.existing()),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), vectors={"kind": kind, "dim": dim},
                    tokens=tokens_total, avgdl=avgdl, next_id=self._next_id, next_doc_key=self._next_key,
                    removed_documents=len(self._hidden), previous_base=previous,
                    previous_replaced=replaced if previous else None, libraries={"pymilvus": pymilvus_version()})
        self._insert(b.meta(self.base), manifest_rows(full, df, self.gen))
        b.call("upsert", b.meta(self.base), [meta_row("head", "head", json.dumps({"generation": self.gen}))])
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
        b = self._b
        b.call("flush", self.base, timeout=BULK_TIMEOUT)
        # sealed, the documents answer lookups in ~20 ms instead of ~0.5 s on Milvus Lite at 100,000 passages
        b.call("flush", b.meta(self.base), timeout=BULK_TIMEOUT)
        b.call("create_index", self.base, passage_indexes(kind), timeout=BULK_TIMEOUT)
        b.call("load_collection", self.base, timeout=BULK_TIMEOUT)

    def _insert(self, collection: str, rows: list[dict], method: str = "insert") -> None:
        if rows:
            self._b.call("has_collection", collection)  # reconnects, if need be, before a call that cannot
        for chunk in batches(rows):
            self._b.call(method, collection, chunk, timeout=BULK_TIMEOUT)
            if self._lock is not None:
                self._lock.beat()

    def _upsert(self, collection: str, rows: list[dict]) -> None:
        self._insert(collection, rows, "upsert")

    def _discard_after(self, gen: int) -> None:
        """Undo what builds after ``gen`` wrote and never made live (they died, or gave up)."""
        b = self._b
        for collection, fields in ((self.base, PASSAGE_FIELDS), (b.meta(self.base), META_FIELDS)):
            b.call("delete", collection, filter=f"added > {gen}")
            hidden = b.query_all(collection, f"removed > {gen} and removed < {NEVER}", fields)
            for row in hidden:
                row["removed"] = NEVER
            self._upsert(collection, hidden)

    def _discard(self) -> None:
        try:
            if self._base_manifest is None:
                self._b.call("drop_collection", self._b.meta(self.base))
                self._b.call("drop_collection", self.base)
            else:
                self._discard_after(self.previous)
                self._mark(None)
        except Exception:  # noqa: BLE001 - the next build cleans up what this one could not
            pass

    def _mark(self, state: str | None) -> None:
        """The "pending" row exists while an incremental build may have written rows not yet live."""
        meta = self._b.meta(self.base)
        if state is None:
            self._b.call("delete", meta, filter='k == "pending"')
        else:
            self._b.call("upsert", meta, [meta_row("pending", "pending", "{}")])

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
