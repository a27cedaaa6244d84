"""The index behind one interface (``interface.py``); ``connect`` picks the implementation.

Layout of the package: ``interface.py`` the protocols every caller uses;
``common.py`` what both implementations share (the BM25 term weight, vector
normalisation, the open-and-retry of the live state, the writer's lifecycle);
``local.py`` the implementation in one folder (snapshots, manifest, the
atomic switch), built from ``store.py`` (SQLite: documents, passages, the
embedding cache), ``vectors.py`` (FAISS), ``keyword.py`` (bm25s) and
``durable.py`` (fsync, the CURRENT switch, the build lock); ``milvus/`` the
same interface over a Milvus server or Milvus Lite file, for indexes shared by
several web replicas; ``bases.py`` where each knowledge base's index lives
(``locate``) and where the list of bases is kept (``registry``). Nothing outside this package names a file inside an
index folder or a Milvus collection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .bases import DEFAULT as DEFAULT_BASE
from .bases import Registry, locate, registry
from .interface import IndexBackend, IndexReader, IndexWriter, VectorCache

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["DEFAULT_BASE", "IndexBackend", "IndexReader", "IndexWriter", "Registry", "VectorCache", "connect", "locate",
           "registry"]


def connect(settings: Settings) -> IndexBackend:
    """The index the settings name: Milvus when ``settings.milvus_uri`` is set, else the folder
    ``settings.index_dir``.

    Opening nothing yet, so it is free to call; the heavy libraries (and the
    connection to a server) come when a reader or writer is first asked for.
    """
    if settings.milvus_uri:
        from .milvus import MilvusBackend

        return MilvusBackend(settings)
    from .local import LocalBackend

    return LocalBackend(settings.index_dir)
