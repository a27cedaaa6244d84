"""What the rest of the program may know about an index: three small protocols.

Why protocols: the pipeline, the web chat and the bench talk to "the index",
never to its files. Two implementations answer: ``local.py`` (FAISS, bm25s and
SQLite snapshots in one folder) and ``milvus/`` (a Milvus server or Milvus Lite
file), selected by settings in ``qa.index.connect``, with no caller changing.
So nothing here names a file, a folder or a library, and ids are plain
integers chosen by the index. What the two share in code is in ``common.py``.

``IndexBackend``  where the index lives: opens the live state, starts a build.
``IndexReader``   one committed state, frozen: searches and lookups, thread-safe.
``IndexWriter``   one build: add and remove documents, then ``commit`` (all or nothing).
``VectorCache``   passage vectors by (encoder identity, text), so unchanged text is never re-encoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np

    from ..types import DocInfo, Document, Passage


class IndexReader(Protocol):
    """One committed state of the index. A build that commits later does not change it."""

    @property
    def version(self) -> str:
        """Names this state; a different value means a build has committed since."""
        ...

    @property
    def manifest(self) -> Mapping[str, Any]:
        """What the build committed with (encoder identity and name, chunking settings)."""
        ...

    def search_dense(self, qvec: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (passage id, cosine similarity), best first."""
        ...

    def search_keyword(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (passage id, BM25 score) over jieba tokens, best first; no shared token, no entry."""
        ...

    def doc_freq(self, token: str) -> int:
        """Passages containing ``token`` (for IDF weights outside BM25)."""
        ...

    def passage_count(self) -> int: ...

    def passages(self, ids: Sequence[int]) -> list[tuple[Passage, Document]]:
        """(passage, its document) for each id from a search, in the order given."""
        ...

    def documents(self) -> list[DocInfo]:
        """Every document, sorted by id."""
        ...

    def document(self, doc_id: str) -> Document:
        """One document with its full cleaned text; ``UsageError`` when there is none with that id."""
        ...

    def describe(self) -> dict[str, Any]:
        """How the engine holds this state, for measurements (e.g. the dense index type)."""
        ...

    def close(self) -> None: ...


class IndexWriter(Protocol):
    """One build. Nothing is visible to readers until ``commit``; leaving the ``with``
    block without it discards the build. A second writer at once raises ``IndexBusy``."""

    def __enter__(self) -> IndexWriter: ...

    def __exit__(self, *exc: object) -> None: ...

    def existing(self) -> dict[str, str]:
        """doc_id -> content hash of what the new state holds so far."""
        ...

    def document_path(self, doc_id: str) -> str | None:
        """The source path a document was loaded from, or None when it is not in the index."""
        ...

    def add_document(
        self, doc: Document, passages: Sequence[Passage], vectors: np.ndarray, tokens: Sequence[Sequence[str]]
    ) -> None:
        """Add ``doc`` (replacing one with the same id) with its passages, their vectors and jieba tokens."""
        ...

    def remove_document(self, doc_id: str) -> None: ...

    def passage_count(self) -> int: ...

    def commit(self, manifest: Mapping[str, Any]) -> None:
        """Make the new state live, atomically; ``manifest`` is what readers will see as theirs."""
        ...


class VectorCache(Protocol):
    """Passage vectors remembered by (encoder identity, text); only a speed-up, never the truth."""

    def __enter__(self) -> VectorCache: ...

    def __exit__(self, *exc: object) -> None: ...

    def get(self, identity: str, texts: Sequence[str]) -> list[np.ndarray | None]: ...

    def put(self, identity: str, texts: Sequence[str], vectors: np.ndarray | Sequence[np.ndarray]) -> None: ...

    def close(self) -> None: ...


class IndexBackend(Protocol):
    """Where an index lives. Cheap to make; nothing is read until a method asks."""

    @property
    def location(self) -> str:
        """Where the index is, as a user would name it in a message."""
        ...

    @property
    def builds_on_first_use(self) -> bool:
        """Whether the first question (``qa ask``, ``qa serve``) may build a missing index from the seeds.
        False where the index is shared (Milvus): a mistyped name would fill a new one and serve it."""
        ...

    def live_version(self) -> str | None:
        """The live state's version, or None before the first build; cheap enough per question."""
        ...

    def live(self) -> IndexReader:
        """The live state, opened once and reopened when a build has committed since.

        ``IndexMissing`` before the first build, ``IndexCorrupt`` when it cannot be read.
        """
        ...

    def open(self) -> IndexReader:
        """A fresh reader of the live state, owned (and closed) by the caller."""
        ...

    def writer(self, fresh: bool = False, previous: IndexReader | None = None) -> IndexWriter:
        """A build: ``fresh`` starts from nothing instead of the live state. ``previous`` is
        the caller's reader of the live state, which the writer may reuse and which must not
        be queried afterwards."""
        ...

    def vector_cache(self) -> VectorCache:
        """The embedding cache that goes with this index (the caller closes it)."""
        ...

