"""What both index backends share: one definition each, so the folder index and Milvus cannot drift apart.

Why one module: the two backends answer the same protocols (``interface.py``)
and must rank alike, refuse the same additions and say the same things. So the
BM25 term weight, vector normalisation, the token separator, the format
number, the "open the live state, retrying while a build switches it" loop,
the cached live reader and the writer's ``with``-block lifecycle live here,
and each backend keeps only what is its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

import numpy as np

from ..errors import IndexCorrupt, IndexMissing

if TYPE_CHECKING:
    from ..types import Document, Passage

FORMAT = 1  # of what a build writes; a reader refuses another one
REBUILD = "Run: qa build --full to rebuild it."
TOKEN_SEP = "\x1f"  # unit separator: never part of a jieba token of cleaned text
K1, B = 0.9, 0.4  # Anserini's defaults; README "Retrieval" (bm25s' own, 1.5 / 0.75, favoured short passages)


# -- words ------------------------------------------------------------------------------
def join_tokens(tokens: Sequence[str]) -> str:
    """A passage's jieba tokens as one stored string."""
    return TOKEN_SEP.join(t.replace(TOKEN_SEP, "") for t in tokens)


def split_tokens(joined: str) -> list[str]:
    return joined.split(TOKEN_SEP) if joined else []


# -- BM25 (bm25s's Lucene variant) ----------------------------------------------------------
def term_weights(tf: np.ndarray, doc_len: Any, avgdl: float, lengths: np.ndarray | None = None) -> np.ndarray:
    """The BM25 term weight ``tf / (tf + k1 (1 - b + b dl / avgdl))``, without the IDF, as float32.

    ``tf``: float32 term counts. ``doc_len``: the length of the passage they
    belong to (one number), or of each passage when ``lengths`` says how many
    consecutive counts each passage has (a CSR matrix's rows). Computed in
    place: at 100,000 passages there are 10 million counts, and every
    temporary costs tens of milliseconds.
    """
    norm = length_norm(doc_len, avgdl)
    weights = np.repeat(norm, lengths) if lengths is not None else np.full(np.shape(tf), norm, dtype=np.float32)
    weights += tf
    np.divide(tf, weights, out=weights)
    return weights


def length_norm(doc_len: Any, avgdl: float) -> np.ndarray:
    """``k1 (1 - b + b dl / avgdl)`` of each length, as float32: the part of ``term_weights`` a passage's
    length decides (a folder index with a delta segment computes it per passage once, then per query)."""
    return (K1 * ((1 - B) + B * np.asarray(doc_len, dtype=np.float64) / (avgdl or 1.0))).astype(np.float32)


def idf(n: Any, df: Any, log: Callable[[Any], Any] = np.log) -> Any:
    """bm25s's Lucene IDF ``log(1 + (n - df + 0.5) / (df + 0.5))``, of a number or an array.

    ``log`` is ``math.log`` for one number: ``np.log`` differs from it in the
    last bit for some values, and a stored index's scores must not move.
    """
    return log(1.0 + (n - df + 0.5) / (df + 0.5))


# -- vectors ------------------------------------------------------------------------------
def normalised(vectors: np.ndarray) -> np.ndarray:
    """Unit length (cosine similarity becomes an inner product); a zero vector stays zero.

    One vector or rows of them. A single vector is divided by its own norm as
    a number, as the Milvus reader always did with a query.
    """
    if vectors.ndim == 1:
        return vectors / (float(np.linalg.norm(vectors)) or 1.0)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


# -- messages -------------------------------------------------------------------------------
def short_error(error: BaseException) -> str:
    """The last line of an error's text (pymilvus keeps it in ``message``), at most 200 characters."""
    text = str(getattr(error, "message", "") or error).strip().splitlines() or [type(error).__name__]
    return text[-1][:200]


# -- readers -------------------------------------------------------------------------------
class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


R = TypeVar("R", bound=_Versioned)


def open_live(location: str, live_version: Callable[[], str | None], open_version: Callable[[str], R]) -> R:
    """A reader of the live state; ``IndexMissing`` before the first build.

    A build may switch the live state while it is being opened, and the old
    state's files may then go: an ``IndexCorrupt`` counts only when the live
    version has not moved, else the new one is opened.
    """
    for _ in range(3):
        version = live_version()
        if version is None:
            raise IndexMissing(f"No index yet in {location}.", "Run: qa build")
        try:
            return open_version(version)
        except IndexCorrupt:
            if live_version() == version:
                raise
    raise IndexCorrupt(f"The index in {location} keeps changing while it is opened.", "Wait for builds to finish.")


class LiveReader(Generic[R]):
    """The reader every question shares, reopened once a build has committed since (``IndexBackend.live``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one opening at a time: a second question waits for it, then shares it
        self._reader: R | None = None

    def get(self, version: str | None, open_reader: Callable[[], R]) -> R:
        with self._lock:
            if self._reader is None or version != self._reader.version:
                # the replaced reader is not closed: questions that took it may still be reading
                self._reader = open_reader()
            return self._reader


# -- writers ------------------------------------------------------------------------------
W = TypeVar("W", bound="WriterBase")


class WriterBase:
    """What every ``IndexWriter`` does alike: the ``with`` block and ``add_document``'s contract.

    A writer holds its build lock from ``__enter__``; leaving the block without
    ``commit`` discards the build; both release the lock. Subclasses say how to
    take the lock (``_acquire``), start, discard and let go (``_release``).
    """

    dim: int | None = None  # of the vectors; known from the live state or the first addition
    _committed = False  # set by ``commit`` once the build is live

    def _acquire(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def remove_document(self, doc_id: str) -> None:
        raise NotImplementedError

    def __enter__(self: W) -> W:
        self._acquire()
        try:
            self._start()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._committed:
                self._discard()
        finally:
            self._release()

    def _admit(
        self, doc: Document, passages: Sequence[Passage], vectors: object, tokens: Sequence[Sequence[str]]
    ) -> np.ndarray:
        """``add_document``'s first steps: check the addition, learn the dimension, drop the old copy.

        Returns the vectors as float32 rows."""
        rows = checked_addition(doc, passages, vectors, tokens, self.dim)
        if len(rows):
            self.dim = int(rows.shape[1])
        self.remove_document(doc.doc_id)
        return rows

    def _commit_dim(self, manifest: Mapping[str, Any]) -> int:
        """The vector dimension to commit with: the documents', else the manifest's."""
        dim = self.dim or manifest.get("dim")
        if not dim:
            raise ValueError("the vector dimension is unknown: add a document or give manifest['dim']")
        return int(dim)


def checked_addition(
    doc: Document, passages: Sequence[Passage], vectors: object, tokens: Sequence[Sequence[str]], dim: int | None
) -> np.ndarray:
    """``IndexWriter.add_document``'s contract, checked the same way by every implementation.

    Why: a wrong offset, a missing vector or a vector of another model's
    dimension would be stored silently and surface later as a wrong citation;
    each implementation refuses it before writing anything. Returns the
    vectors as float32 rows.
    """
    rows = np.asarray(vectors, dtype=np.float32)
    if not (len(passages) == len(rows) == len(tokens)):
        raise ValueError(f"{doc.doc_id}: {len(passages)} passages, {len(rows)} vectors, {len(tokens)} token lists")
    if rows.ndim != 2 or (dim is not None and rows.shape[1] != dim and len(rows)):
        raise ValueError(f"{doc.doc_id}: vectors of shape {rows.shape}, the index holds dimension {dim}")
    for p in passages:
        if doc.text[p.start : p.end] != p.text or p.doc_id != doc.doc_id:
            raise ValueError(f"{doc.doc_id}: passage {p.ordinal} does not match the document text")
    return rows


__all__ = [
    "B", "FORMAT", "K1", "REBUILD", "TOKEN_SEP", "LiveReader", "WriterBase", "checked_addition", "idf",
    "join_tokens", "length_norm", "normalised", "open_live", "short_error", "split_tokens", "term_weights",
]
