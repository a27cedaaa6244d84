"""Reading one committed generation of a Milvus index: searches and lookups."""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, OrderedDict
from typing import Any, Sequence

import numpy as np

from ...errors import IndexCorrupt, UsageError
from ...types import DocInfo, Document, Passage
from ..common import REBUILD, idf, normalised
from .client import Connection, chunks
from .schema import HNSW_EF, load_documents, read_manifest, token_id, visible


CACHED_DOCS = 256  # documents a reader keeps in memory, most recently used


class MilvusReader:
    """One committed generation of one collection; thread-safe (the client is)."""

    def __init__(self, backend: Connection, base: str, gen: int) -> None:
        self._b = backend
        self.base, self.generation = base, gen
        self.version = f"{base}:{gen}"
        # No passage count against the manifest here (the folder index checks its files): a filtered
        # count(*) took 7-10 s on Milvus Lite at 100,000 passages, and the head moves only after
        # every row of its generation is written; a missing row still gives IndexCorrupt when read.
        self.manifest, self._df = read_manifest(backend, base, gen)
        self._filter = visible(gen)
        self._docs: OrderedDict[int, Document] = OrderedDict()
        self._docs_lock = threading.Lock()

    # -- searches ----------------------------------------------------------------------
    def search_dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        if k <= 0 or not self.manifest["passages"]:
            return []
        q = normalised(np.asarray(qvec, dtype=np.float32).reshape(-1))
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
                out[key] = out.get(key, 0.0) + count * idf(n, df, math.log)
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
            for chunk in chunks([i for i in wanted if i not in rows], 1000):
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
        rows = self._b.query_all(self._b.meta(self.base), f'kind == "doc" and part == 0 and {self._filter}', ["body"])
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
            loaded = load_documents(self._b, self.base, todo, strong=False)
            if set(loaded) != set(todo):  # not seen yet within the staleness bound: ask again, strongly
                loaded.update(load_documents(self._b, self.base, sorted(set(todo) - set(loaded))))
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
