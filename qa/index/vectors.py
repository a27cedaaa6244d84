"""Dense vectors addressed by passage id; the only module that imports faiss.

Vectors are L2-normalised, so inner product is cosine similarity. Small
collections use an exact ``IndexIDMap2(IndexFlatIP)``; from ``IVF_FROM``
passages on, an ``IndexIVFFlat`` (inner product) answers instead. IVF rather
than HNSW because an update must stay incremental: IVF can ``remove_ids``,
HNSW cannot, so removing or replacing one document in an HNSW index means
rebuilding the graph for the whole collection. See benchmarks/index_scale.py
for the figures behind the threshold.

A delta segment (``VectorDelta``: the vectors added since a base snapshot
and the ids removed from it) lets an incremental build leave the base's file
untouched; a reader applies it to the loaded base (``apply``: ``remove_ids``,
then ``add_with_ids``, exactly what a rewritten file would have received), so
search is unchanged and answers as the rewritten index would.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np

from .common import normalised

# Passages from which the approximate index answers. Measured at dim 384 on
# 2 cores (benchmarks/index_scale.py --sweep): exact search costs ~5 ms per
# query at 50k, ~10 ms at 100k, ~19 ms at 200k, growing linearly; IVF with
# nprobe 32 answers in < 1 ms with recall@10 >= 0.98 against brute force. Up
# to 100k exact search stays within a third of the 30 ms retrieval budget, so
# results are exact there; beyond it the budget would go to FAISS alone.
IVF_FROM = 100_000
IVF_NPROBE = 32  # lists probed per query
IVF_TRAIN_MIN = 64 * 1024  # vectors sampled to train the coarse quantiser (at least 40 per list)
_HEADER_TAGS = (b"IxM2", b"IwFl")  # faiss's tags for IndexIDMap2 and IndexIVFFlat files


def _faiss() -> Any:
    import faiss  # heavy: imported only when an index is touched

    return faiss


def _threads(n: int) -> None:
    """OpenMP threads for FAISS calls made *by the calling thread* from now on.

    One thread per query: with OpenMP's two threads a single-query search on
    this 2-core machine ran 3-5x slower (and far worse when the other core is
    busy with encoding or another request); bulk work uses every core
    (``_bulk``). Why this is per call and not process-wide: the OpenMP runtime
    faiss-cpu ships (libgomp) keeps this setting per thread, so a build raising
    it in its own thread leaves the questions answered in other threads at one
    (tests/test_vectors.py checks that on the installed runtime). So every
    search sets it for its own thread; a thread that never did would run
    with the runtime's default, all cores.
    """
    _faiss().omp_set_num_threads(n)


class _bulk:
    """All cores for training and bulk adds in this thread, then back to one."""

    def __enter__(self) -> None:
        _threads(os.cpu_count() or 1)

    def __exit__(self, *exc: object) -> None:
        _threads(1)


def nlist_for(n: int) -> int:
    """Inverted lists for ``n`` vectors: ~4·sqrt(n), a power of two, 256..16384."""
    return int(min(16384, max(256, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))))


def kind_for(n: int, current: str | None = None) -> str:
    """"flat" or "ivf<nlist>" for ``n`` vectors, with hysteresis so an index
    hovering around the threshold does not flip (and retrain) on every build."""
    if current and current.startswith("ivf"):
        trained = int(current[3:])
        if n >= IVF_FROM // 2 and nlist_for(n) in (trained, trained * 2, trained // 2):
            return current
    return f"ivf{nlist_for(n)}" if n >= IVF_FROM else "flat"


class VectorIndex:
    """An id-addressed index of normalised float32 vectors."""

    def __init__(self, index, kind: str) -> None:
        self._index = index
        self.kind = kind

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, kind: str | None = None) -> "VectorIndex":
        """A new index over ``vectors``; ``kind`` defaults to what suits their number."""
        faiss = _faiss()
        kind = kind or kind_for(len(ids))
        vectors = _normalised(vectors, dim)
        if kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        else:
            nlist = int(kind[3:])
            quantiser = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantiser, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.own_fields = True
            quantiser.this.disown()
            index.set_direct_map_type(faiss.DirectMap.Hashtable)  # remove_ids / reconstruct by id
            sample, wanted = vectors, max(IVF_TRAIN_MIN, 40 * nlist)
            if len(vectors) > wanted:
                sample = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), wanted, replace=False))]
            if len(sample) < nlist:
                raise ValueError(f"{len(sample)} vectors cannot train {nlist} lists")
            with _bulk():
                index.train(sample)
            index.nprobe = IVF_NPROBE
        out = cls(index, kind)
        with _bulk():
            out.add(ids, vectors)
        return out

    @classmethod
    def load(cls, path: Path, kind: str) -> "VectorIndex":
        """Read a saved index; raises ``OSError``/``RuntimeError`` when unreadable."""
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if kind.startswith("ivf"):
            faiss.extract_index_ivf(index).nprobe = IVF_NPROBE
        return cls(index, kind)

    @staticmethod
    def peek(path: Path) -> tuple[int, int]:
        """(dimension, vectors) from a saved index's header, without reading the rest.

        Both kinds written here (``IndexIDMap2``, ``IndexIVFFlat``) begin with
        faiss's index header: a four-byte tag, then ``d`` (int32) and
        ``ntotal`` (int64), little-endian. ``ValueError`` for another tag.
        """
        with open(path, "rb") as f:
            head = f.read(16)
        if len(head) < 16 or head[:4] not in _HEADER_TAGS:
            raise ValueError(f"not a FAISS index of a known kind (tag {head[:4]!r})")
        dim, count = struct.unpack("<iq", head[4:16])
        return int(dim), int(count)

    def save(self, path: Path) -> None:
        """Write to ``path`` (the caller fsyncs the snapshot as a whole)."""
        _faiss().write_index(self._index, str(path))

    # -- updates ---------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(_normalised(vectors, self.dim), np.asarray(ids, dtype=np.int64))

    def apply(self, delta: "VectorDelta") -> None:
        """The changes of ``delta``: its removed ids out, its vectors in."""
        removed = self.remove(delta.removed)
        if removed != len(delta.removed):
            raise ValueError(f"the delta removes {len(delta.removed)} ids, {removed} were in the index")
        self.add(delta.ids, delta.vectors)

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids):
            return 0
        return int(self._index.remove_ids(np.asarray(ids, dtype=np.int64)))

    # -- queries ---------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids by cosine similarity, best first."""
        k = min(int(k), len(self))
        if k <= 0:
            return []
        q = _normalised(np.asarray(query, dtype=np.float32).reshape(1, -1), self.dim)
        _threads(1)
        scores, ids = self._index.search(q, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


@dataclass
class VectorDelta:
    """Vectors added since a base (``ids``, ``vectors``, one row each) and base ids removed (``removed``).

    Cumulative, like ``keyword.KeywordDelta``: every change since the base."""

    ids: np.ndarray
    vectors: np.ndarray
    removed: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "VectorDelta":
        return cls(np.zeros(0, np.int64), np.zeros((0, dim), np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.ids) + len(self.removed)

    def changed(self, remove: Collection[int], add_ids: np.ndarray, add_vectors: np.ndarray) -> "VectorDelta":
        """The next delta: ``remove`` (ids of this delta's rows or of the base's) gone, the additions appended."""
        gone = np.asarray(sorted(remove), dtype=np.int64)
        keep = ~np.isin(self.ids, gone)
        add_vectors = np.asarray(add_vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1])
        return VectorDelta(
            np.concatenate([self.ids[keep], np.asarray(add_ids, dtype=np.int64)]),
            np.concatenate([self.vectors[keep], add_vectors]),
            np.union1d(self.removed, gone[~np.isin(gone, self.ids)]).astype(np.int64),
        )

    def save(self, directory: Path) -> None:
        """Write into ``directory`` (the caller fsyncs the snapshot as a whole)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("ids", "vectors", "removed"):
            np.save(directory / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, dim: int) -> "VectorDelta":
        delta = cls(*(np.load(Path(directory) / f"{name}.npy", allow_pickle=False)
                      for name in ("ids", "vectors", "removed")))
        if delta.vectors.shape != (len(delta.ids), dim) or delta.vectors.dtype != np.float32:
            raise ValueError(f"{directory}: {delta.vectors.shape} delta vectors for {len(delta.ids)} ids")
        return delta


def _normalised(vectors: np.ndarray, dim: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of dimension {dim}, got shape {vectors.shape}")
    return normalised(vectors)


def library_version() -> str:
    return str(_faiss().__version__)
