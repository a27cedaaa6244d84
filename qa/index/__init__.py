"""The index: FAISS + SQLite + bm25s snapshots on disk (``local``) and their parts."""
