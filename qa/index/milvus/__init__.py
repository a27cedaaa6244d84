"""The index on a Milvus server (or a Milvus Lite file): the same interface as ``local.py``.

Modules: ``client.py`` the connection (calls, lost server, batches);
``lock.py`` the build lock; ``schema.py`` the collections and their rows;
``reader.py`` ``MilvusReader``; ``writer.py`` ``MilvusWriter``; here
``MilvusBackend``, which names the collections and opens readers and writers.

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
build drops the orphans. The replaced pair stays for questions still reading
it, until the first build that starts ``writer.PREVIOUS_GRACE`` after the switch.
An incremental build writes into the live pair: rows carry ``added`` (the
generation that wrote them) and ``removed`` (the one that hid them), and a
reader pinned to generation ``g`` filters on
``added <= g < removed``, as the SQLite store does; the build becomes live by
one upsert of the "head" row, and a dead build's rows are dropped by the next.
Nothing is built implicitly (``builds_on_first_use``): on a shared server a
mistyped collection name must not be filled with the seeds and served.

Keyword search. Passages are cut into words by the project's own jieba
(``segment.tokenize``), exactly as for bm25s, and stored as sparse vectors of BM25
term weights ``tf / (tf + k1 (1 - b + b dl / avgdl))`` (``common.term_weights``,
which also weights the bm25s index), keyed by a 32-bit hash of the word; the
query vector carries each word's IDF (``common.idf``), computed from document
frequencies the manifest keeps for its generation. Their inner product is
bm25s's Lucene BM25 score, so both indexes rank alike, and ``doc_freq`` is
exact. Milvus's own BM25 function with its jieba analyzer was not used: it cuts
words with its own jieba port and filters, not the project's search-mode cut and
stop words, and it has no document frequency to read. ``avgdl`` is fixed when
the collection is written from scratch; an incremental build keeps it
(``qa build --full`` refreshes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import IndexCorrupt, IndexMissing
from ..common import REBUILD, LiveReader, open_live
from ..interface import IndexReader
from ..store import EmbeddingCache
from .client import Connection, Refused
from .reader import MilvusReader
from .writer import MilvusWriter

if TYPE_CHECKING:
    from ...config import Settings

__all__ = ["MilvusBackend", "MilvusReader", "MilvusWriter"]


class MilvusBackend(Connection):
    """``IndexBackend`` over one Milvus (``QA_MILVUS_URI``), the collection ``QA_MILVUS_COLLECTION``."""

    # A shared server: a replica whose QA_MILVUS_COLLECTION is mistyped must not fill a new index with
    # the seeds and serve it; builds are asked for (qa build), and a missing index names what is there.
    builds_on_first_use = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.milvus_uri, settings.milvus_token, settings.milvus_db, settings.milvus_collection)
        self.index_dir = settings.index_dir
        self._live: LiveReader[MilvusReader] = LiveReader()

    # -- IndexBackend ----------------------------------------------------------------
    def live_version(self) -> str | None:
        base = self.target()
        if base is None:
            return None
        try:
            gen = self.head(base, strong=False)
        except Refused:
            return None
        return None if gen is None else f"{base}:{gen}"

    def live(self) -> MilvusReader:
        return self._live.get(self.live_version(), self.open)

    def open(self) -> MilvusReader:
        try:
            return open_live(self.location, self.live_version, self._open_version)
        except IndexMissing:
            raise self.missing() from None

    def missing(self) -> IndexMissing:
        """No index of this name: which indexes the server holds, and how to build one."""
        others = self.indexes()
        db = f", database {self.db}" if self.db else ""
        where = f"No index named {self.name} on the Milvus server at {self.uri}{db}"
        if not others:
            return IndexMissing(f"{where} (no qa index there yet).", "Build it with: qa build [FOLDER ...]")
        return IndexMissing(
            f"{where} (indexes there: {', '.join(others)}).",
            "Set QA_MILVUS_COLLECTION to one of those, or build this one with: qa build [FOLDER ...]",
        )

    def _open_version(self, version: str) -> MilvusReader:
        base, gen = version.split(":")
        try:
            return MilvusReader(self, base, int(gen))
        except Refused as error:
            raise IndexCorrupt(f"The index in {self.location} cannot be read ({error}).", REBUILD) from None

    def writer(self, fresh: bool = False, previous: IndexReader | None = None) -> MilvusWriter:
        return MilvusWriter(self, fresh=fresh)

    def vector_cache(self) -> EmbeddingCache:
        """Local, beside where builds run (see the package docstring)."""
        return EmbeddingCache(self.index_dir)
