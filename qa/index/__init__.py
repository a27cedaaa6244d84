"""The index behind one interface (``interface.py``); ``connect`` picks the implementation.

Layout of the package: ``interface.py`` the protocols every caller uses;
``local.py`` the implementation in one folder (snapshots, manifest, the
atomic switch), built from ``store.py`` (SQLite: documents, passages, the
embedding cache), ``vectors.py`` (FAISS), ``keyword.py`` (bm25s) and
``durable.py`` (fsync, the CURRENT switch, the build lock). Nothing outside
this package names a file inside an index folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .interface import IndexBackend, IndexReader, IndexWriter, VectorCache

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["IndexBackend", "IndexReader", "IndexWriter", "VectorCache", "connect"]


def connect(settings: Settings) -> IndexBackend:
    """The index the settings name: today always the folder ``settings.index_dir``.

    Opening nothing yet, so it is free to call; the heavy libraries load when
    a reader or writer is first asked for.
    """
    from .local import LocalBackend

    return LocalBackend(settings.index_dir)
