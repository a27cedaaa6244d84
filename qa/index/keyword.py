"""BM25 over jieba tokens; the only module that imports bm25s.

bm25s is given token lists, never raw text: its default tokenizer splits on
whitespace and ASCII word characters, which leaves Chinese as one token per
run of characters. The index is built once per index generation, saved, and
loaded (memory-mapped) by readers; a query only scores postings.

Why the index is not built with ``bm25s.BM25.index``: that loops in Python
over every token (about 10 s at 100,000 passages), and an added document must
cost seconds, not the size of the collection. So each snapshot also keeps the
raw term frequencies (a doc-major CSR matrix); an update drops the removed
rows, appends the new ones and recomputes the BM25 weights with numpy, using
the same Lucene-variant formula bm25s uses (``common.term_weights`` and
``common.idf``, which the Milvus index uses too; tests/test_keyword.py checks
the weights against ``bm25s.BM25.index`` on the same tokens). The result is
handed to bm25s as its score matrix, and bm25s saves, loads and scores it.
"""

from __future__ import annotations

import json
from pathlib import Path
from array import array
from typing import Iterable, Sequence

import numpy as np

from .common import B, K1, idf, term_weights

_TF_FILES = ("ids", "tf_indptr", "tf_terms", "tf_counts")


def _bm25s():
    import bm25s  # heavy-ish (scipy); imported only when an index is touched

    return bm25s


class KeywordIndex:
    """BM25 scores for passages; rows are passage ids in ``self.ids`` order."""

    def __init__(self, ids: np.ndarray, vocab: dict[str, int], retriever=None, tf=None, source: Path | None = None):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vocab = vocab
        self._retriever = retriever  # bm25s.BM25, or None when empty
        self._tf = tf  # (indptr, terms, counts) or None: loaded from ``source`` on demand
        self._source = source

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(cls, ids: Sequence[int] | np.ndarray, tokens: Iterable[Sequence[str]]) -> "KeywordIndex":
        """From scratch; ``tokens`` may be a generator, in the order of ``ids``."""
        vocab: dict[str, int] = {}
        id_array = np.asarray(ids, dtype=np.int64)
        rows = _rows(tokens, vocab)
        if len(rows[0]) != len(id_array) + 1:
            raise ValueError(f"{len(id_array)} ids but {len(rows[0]) - 1} token lists")
        return cls._from_rows(id_array, vocab, *rows)

    def updated(
        self, remove: Iterable[int], add_ids: Sequence[int], add_tokens: Sequence[Sequence[str]]
    ) -> "KeywordIndex":
        """A new index: this one without ``remove`` and with the added passages."""
        indptr, terms, counts = self._rows()
        keep = ~np.isin(self.ids, np.asarray(list(remove), dtype=np.int64))
        vocab = dict(self.vocab)
        new_indptr, new_terms, new_counts = _rows(add_tokens, vocab)
        ids = self.ids
        if not keep.all():  # a pure addition skips copying the whole matrix once more
            lengths = np.diff(indptr)
            entry_keep = np.repeat(keep, lengths)
            indptr = np.concatenate([[0], np.cumsum(lengths[keep])])
            ids, terms, counts = ids[keep], terms[entry_keep], counts[entry_keep]
        return self._from_rows(
            np.concatenate([ids, np.asarray(add_ids, dtype=np.int64)]), vocab,
            np.concatenate([indptr, indptr[-1] + new_indptr[1:]]),
            np.concatenate([terms, new_terms]), np.concatenate([counts, new_counts]),
        )

    @classmethod
    def _from_rows(cls, ids, vocab, indptr, terms, counts) -> "KeywordIndex":
        n, n_vocab = len(ids), len(vocab)
        tf = (np.asarray(indptr, np.int64), np.asarray(terms, np.int32), np.asarray(counts, np.int32))
        if n == 0 or n_vocab == 0:
            return cls(ids, vocab, None, tf)
        from scipy.sparse import csr_matrix

        indptr, terms, counts = tf
        lengths = np.diff(indptr)
        total = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        doc_len = (total[indptr[1:]] - total[indptr[:-1]]).astype(np.float64)
        avg = float(doc_len.mean()) or 1.0
        df = np.bincount(terms, minlength=n_vocab).astype(np.float64)
        idfs = idf(n, df).astype(np.float32)  # bm25s _score_idf_lucene
        # bm25s _score_tfc_lucene, idf * tf / (norm + tf)
        weights = term_weights(counts.astype(np.float32), doc_len, avg, lengths)
        weights *= np.take(idfs, terms)
        csc = csr_matrix((weights, terms, indptr), shape=(n, n_vocab)).tocsc()  # rows come out sorted
        retriever = _bm25s().BM25(k1=K1, b=B, method="lucene")
        retriever.scores = {
            "data": np.asarray(csc.data, np.float32),
            "indices": np.asarray(csc.indices, np.int32),
            "indptr": np.asarray(csc.indptr, np.int64),
            "num_docs": n,
        }
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.nonoccurrence_array = None
        return cls(ids, vocab, retriever, tf)

    # -- persistence -------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write into ``directory`` (the caller fsyncs the snapshot as a whole)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        indptr, terms, counts = self._rows()
        for name, values in zip(_TF_FILES, (self.ids, indptr, terms, counts), strict=True):
            np.save(directory / f"{name}.npy", values, allow_pickle=False)
        if self._retriever is not None:
            self._retriever.save(str(directory), show_progress=False)
        else:
            (directory / "vocab.index.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> "KeywordIndex":
        """Load a saved index; raises ``OSError``/``ValueError`` when unreadable.

        ``mmap``: the score matrix stays on disk and the OS pages in the
        postings a query touches, so a cold start does not read it all.
        """
        directory = Path(directory)
        ids = np.load(directory / "ids.npy", allow_pickle=False)
        if len(ids) == 0:
            vocab = json.loads((directory / "vocab.index.json").read_text(encoding="utf-8"))
            return cls(ids, vocab, None, None, directory)
        retriever = _bm25s().BM25.load(str(directory), mmap=mmap, show_progress=False)
        if (float(retriever.k1), float(retriever.b)) != (K1, B):
            # saved with other BM25 parameters (before 0.9 / 0.4): re-weight from the term counts, so an
            # index that no build has touched since ranks like a new one; the next build saves the new weights
            tf = tuple(np.load(directory / f"{name}.npy", allow_pickle=False) for name in _TF_FILES[1:])
            return cls._from_rows(ids, retriever.vocab_dict, *tf)
        scores = retriever.scores
        if scores["num_docs"] != len(ids) or len(scores["indptr"]) != len(retriever.vocab_dict) + 1:
            raise ValueError(f"{directory}: score matrix and ids disagree")
        if scores["indptr"][-1] != len(scores["data"]) or len(scores["data"]) != len(scores["indices"]):
            raise ValueError(f"{directory}: score matrix is truncated")
        return cls(ids, retriever.vocab_dict, retriever, None, directory)

    def _rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._tf is None:
            if self._source is None:
                raise ValueError("term frequencies are not available")
            self._tf = tuple(np.load(self._source / f"{name}.npy", allow_pickle=False) for name in _TF_FILES[1:])
        return self._tf

    # -- queries -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def doc_freq(self, token: str) -> int:
        """Number of passages containing ``token``."""
        tid = self.vocab.get(token)
        if tid is None or self._retriever is None:
            return 0
        indptr = self._retriever.scores["indptr"]
        return int(indptr[tid + 1] - indptr[tid])

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """Up to ``k`` (passage id, BM25 score), best first; passages sharing no token are left out."""
        if self._retriever is None or k <= 0:
            return []
        tids = [self.vocab[t] for t in tokens if t in self.vocab]
        if not tids:
            return []
        scores = self._retriever.get_scores_from_ids(tids)
        # only passages holding a query word score above 0: select among those, not among every passage
        # (a partition of all 100,000 scores was the largest cost of a keyword search); ties at the k-th
        # score go to the lower row, as in the order below
        hit = np.flatnonzero(scores > 0)
        if len(hit) > k:
            kth = np.partition(scores[hit], len(hit) - k)[len(hit) - k]
            hit = hit[scores[hit] >= kth]
        top = hit[np.lexsort((hit, -scores[hit]))][:k]
        return [(int(self.ids[i]), float(scores[i])) for i in top]


def _rows(tokens: Iterable[Sequence[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Doc-major CSR of term counts for ``tokens`` (consumed once, so a generator
    keeps only one passage's list alive); new tokens are added to ``vocab``."""
    flat = array("q")  # 64-bit on every platform: "l" is 32-bit on Windows
    lengths = array("q")
    for toks in tokens:
        lengths.append(len(toks))
        for t in toks:
            tid = vocab.get(t)
            if tid is None:
                tid = vocab[t] = len(vocab)
            flat.append(tid)
    n = len(lengths)
    if not flat:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    doc = np.repeat(np.arange(n, dtype=np.int64), np.frombuffer(lengths, dtype=np.int64))
    keys, counts = np.unique(doc * len(vocab) + np.frombuffer(flat, dtype=np.int64), return_counts=True)
    rows, terms = np.divmod(keys, len(vocab))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return indptr, terms.astype(np.int32), counts.astype(np.int32)


def library_version() -> str:
    return str(_bm25s().__version__)
