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

Delta segments (``KeywordDelta``, ``KeywordSegments``). Rewriting the weights
of every posting costs about a second per 100,000 passages, so an incremental
build writes only what changed: the added rows' term counts and the ids of
removed base rows (tombstones), beside the untouched base. BM25 statistics do
not add up across segments (the IDF depends on the whole collection's
document frequencies, and every term weight on its average length), and the
base's stored weights hold the base's statistics. So a reader of a base with
a delta scores from raw counts: each base snapshot also keeps its lengths
(``doc_len.npy``) and its counts in the score matrix's term-major order
(``tf_by_term.npy``); at load the reader combines N, the average length and
every document frequency over base minus tombstones plus delta, and a query
weighs the postings of its own terms with exactly the float32 operations a
full build uses, so the scores equal a full build's bit for bit
(tests/test_keyword.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from array import array
from dataclasses import dataclass, field
from typing import Collection, Iterable, Protocol, Sequence

import numpy as np

from .common import B, K1, idf, length_norm, term_weights

_TF_FILES = ("ids", "tf_indptr", "tf_terms", "tf_counts")
SEGMENT_FILES = ("doc_len.npy", "tf_by_term.npy")  # what a base needs so that a delta can go beside it


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
        self._segment: tuple[np.ndarray, np.ndarray] | None = None  # (doc_len, tf_by_term) when built here

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
        vocab = dict(self.vocab)
        return self._updated_rows(remove, add_ids, vocab, *_rows(add_tokens, vocab))

    def _updated_rows(
        self, remove: Iterable[int], add_ids: Sequence[int] | np.ndarray, vocab: dict[str, int],
        new_indptr: np.ndarray, new_terms: np.ndarray, new_counts: np.ndarray,
    ) -> "KeywordIndex":
        """``updated`` with the added rows already counted (term ids of ``vocab``, a superset of ours)."""
        indptr, terms, counts = self._rows()
        keep = ~np.isin(self.ids, np.asarray(list(remove), dtype=np.int64))
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
        # one conversion to term-major order gives the permutation, applied to the weights and to the counts
        order = np.arange(len(terms), dtype=np.int32 if len(terms) < 2**31 else np.int64)
        csc = csr_matrix((order, terms, indptr), shape=(n, n_vocab)).tocsc()  # rows come out sorted
        by_term = np.take(counts, csc.data)
        retriever = _bm25s().BM25(k1=K1, b=B, method="lucene")
        retriever.scores = {
            "data": np.take(weights, csc.data),
            "indices": np.asarray(csc.indices, np.int32),
            "indptr": np.asarray(csc.indptr, np.int64),
            "num_docs": n,
        }
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.nonoccurrence_array = None
        out = cls(ids, vocab, retriever, tf)
        out._segment = (doc_len.astype(np.int64), by_term.astype(_count_type(by_term)))
        return out

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
            if self._segment is not None:
                for name, values in zip(SEGMENT_FILES, self._segment, strict=True):
                    np.save(directory / name, values, allow_pickle=False)
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
        for name in ("data", "indices", "indptr"):  # plain views of the same mapping: slicing a memmap costs
            scores[name] = np.asarray(scores[name])  # a subclass round per term (~0.1 ms a query at 100,000)
        if scores["num_docs"] != len(ids) or len(scores["indptr"]) != len(retriever.vocab_dict) + 1:
            raise ValueError(f"{directory}: score matrix and ids disagree")
        if scores["indptr"][-1] != len(scores["data"]) or len(scores["data"]) != len(scores["indices"]):
            raise ValueError(f"{directory}: score matrix is truncated")
        return cls(ids, retriever.vocab_dict, retriever, None, directory)

    def can_take_delta(self) -> bool:
        """True when this base was loaded from files that hold what a reader needs to score a delta beside it
        (an index re-weighted at load, or built in memory, has no such files: the next build merges)."""
        if self._retriever is None or self._source is None:
            return False
        return all((self._source / name).is_file() for name in SEGMENT_FILES)

    def _rows(self, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The term counts, doc-major; ``mmap``: mapped, not kept (a few rows are read)."""
        if self._tf is None:
            if self._source is None:
                raise ValueError("term frequencies are not available")
            source = self._source
            if mmap:
                indptr, terms, counts = (np.load(source / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                                         for name in _TF_FILES[1:])
                return indptr, terms, counts
            self._tf = tuple(np.load(source / f"{name}.npy", allow_pickle=False) for name in _TF_FILES[1:])
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
        return _top(self.ids, self._retriever.get_scores_from_ids(tids), k)


class _Vocab(Protocol):
    def get(self, key: str) -> int | None: ...
    def __setitem__(self, key: str, value: int) -> None: ...
    def __len__(self) -> int: ...


def _rows(tokens: Iterable[Sequence[str]], vocab: _Vocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


# -- delta segments ---------------------------------------------------------------------
_DELTA_FILES = ("ids", "tf_indptr", "tf_terms", "tf_counts", "removed")


class _Extended:
    """A base vocabulary (not copied) and the terms a delta adds after it (ids ``len(base)`` on)."""

    def __init__(self, base: dict[str, int], new_terms: Sequence[str]) -> None:
        self.base = base
        self.terms = list(new_terms)
        self.new = {t: len(base) + j for j, t in enumerate(self.terms)}

    def get(self, key: str) -> int | None:
        tid = self.base.get(key)
        return tid if tid is not None else self.new.get(key)

    def __setitem__(self, key: str, value: int) -> None:
        self.new[key] = value
        self.terms.append(key)

    def __len__(self) -> int:
        return len(self.base) + len(self.new)


@dataclass
class KeywordDelta:
    """What changed since a base: the added rows' term counts and the base rows removed.

    ``ids``: added passages, one row each (doc-major CSR ``indptr``/``terms``/
    ``counts``; a term id below the base vocabulary's size is the base's, the
    rest are ``new_terms`` in order). ``removed``: passage ids of base rows no
    longer in the collection (tombstones). Cumulative: each snapshot's delta
    holds every change since its base, so a snapshot needs only its base and
    its own delta.
    """

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    terms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    new_terms: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Rows it changes: added plus removed (what the merge rule counts)."""
        return len(self.ids) + len(self.removed)

    def changed(
        self, base_vocab: dict[str, int], remove: Collection[int], add_ids: Sequence[int] | np.ndarray,
        add_tokens: Sequence[Sequence[str]],
    ) -> "KeywordDelta":
        """The next delta: ``remove`` (ids of this delta's rows or of the base's) gone, the additions appended."""
        gone = np.asarray(sorted(remove), dtype=np.int64)
        own = np.isin(gone, self.ids)
        keep = ~np.isin(self.ids, gone)
        lengths = np.diff(self.indptr)
        entry_keep = np.repeat(keep, lengths)
        vocab = _Extended(base_vocab, self.new_terms)
        new_indptr, new_terms, new_counts = _rows(add_tokens, vocab)
        kept_indptr = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        return KeywordDelta(
            ids=np.concatenate([self.ids[keep], np.asarray(add_ids, dtype=np.int64)]),
            indptr=np.concatenate([kept_indptr, kept_indptr[-1] + new_indptr[1:]]).astype(np.int64),
            terms=np.concatenate([self.terms[entry_keep], new_terms]).astype(np.int32),
            counts=np.concatenate([self.counts[entry_keep], new_counts]).astype(np.int32),
            removed=np.union1d(self.removed, gone[~own]).astype(np.int64),
            new_terms=vocab.terms,
        )

    def merged_into(self, base: KeywordIndex) -> KeywordIndex:
        """One segment again: the base without the tombstones, with the added rows (a full build's index)."""
        vocab = dict(base.vocab)
        vocab.update((t, len(base.vocab) + j) for j, t in enumerate(self.new_terms))
        return base._updated_rows(self.removed, self.ids, vocab, self.indptr, self.terms, self.counts)

    def save(self, directory: Path) -> None:
        """Write into ``directory`` (the caller fsyncs the snapshot as a whole)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in _DELTA_FILES:
            np.save(directory / f"{name}.npy", getattr(self, name.removeprefix("tf_")), allow_pickle=False)
        (directory / "terms.json").write_text(json.dumps(self.new_terms, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "KeywordDelta":
        directory = Path(directory)
        arrays = {name.removeprefix("tf_"): np.load(directory / f"{name}.npy", allow_pickle=False)
                  for name in _DELTA_FILES}
        new_terms = json.loads((directory / "terms.json").read_text(encoding="utf-8"))
        delta = cls(new_terms=list(new_terms), **arrays)
        if len(delta.indptr) != len(delta.ids) + 1 or not delta.indptr[-1] == len(delta.terms) == len(delta.counts):
            raise ValueError(f"{directory}: delta rows and ids disagree")
        return delta


class KeywordSegments:
    """A base ``KeywordIndex`` and a ``KeywordDelta``, answering as one index built over both would.

    At load: N, the total length and every document frequency over base minus
    tombstones plus delta, each passage's length norm at the combined average,
    and the combined IDF of every term (one numpy call over the vocabulary, as
    a full build makes it). Per query: each query term's postings in the base
    (term-major counts beside bm25s's matrix, memory-mapped) and in the delta
    are weighed with ``tf / (norm + tf) * idf`` in float32, summed term by term
    in query order as bm25s sums its stored weights; tombstoned rows score 0.
    """

    def __init__(self, base: KeywordIndex, delta: KeywordDelta) -> None:
        retriever = base._retriever
        if retriever is None or not base.can_take_delta():
            raise ValueError("the base has no score matrix to put a delta beside")
        self.base, self.delta = base, delta
        if base._segment is not None:
            doc_len, self._tf_by_term = base._segment
        else:
            assert base._source is not None
            doc_len = np.load(base._source / SEGMENT_FILES[0], allow_pickle=False)
            self._tf_by_term = np.asarray(np.load(base._source / SEGMENT_FILES[1], mmap_mode="r", allow_pickle=False))
        scores = retriever.scores
        self._indptr, self._indices = np.asarray(scores["indptr"]), scores["indices"]
        if len(doc_len) != len(base.ids) or len(self._tf_by_term) != len(self._indices):
            raise ValueError("the base's lengths or term counts disagree with its score matrix")
        self._vocab = _Extended(base.vocab, delta.new_terms)
        n_base_vocab, n_vocab = len(base.vocab), len(base.vocab) + len(delta.new_terms)
        self._tomb = np.flatnonzero(np.isin(base.ids, delta.removed))
        if len(self._tomb) != len(delta.removed):
            raise ValueError("the delta removes passages its base does not hold")
        df = np.zeros(n_vocab, dtype=np.int64)
        df[:n_base_vocab] = np.diff(self._indptr)
        tomb_len = 0
        if len(self._tomb):
            tf_indptr, tf_terms, _ = base._rows(mmap=True)
            for row in self._tomb:
                np.subtract.at(df, np.asarray(tf_terms[tf_indptr[row] : tf_indptr[row + 1]], dtype=np.int64), 1)
            tomb_len = int(doc_len[self._tomb].sum())
        df += np.bincount(delta.terms, minlength=n_vocab)
        delta_len = np.diff(np.concatenate([[0], np.cumsum(delta.counts, dtype=np.int64)])[delta.indptr])
        self.n = len(base.ids) - len(self._tomb) + len(delta.ids)
        total = int(doc_len.sum()) - tomb_len + int(delta_len.sum())
        avg = (total / self.n if self.n else 0.0) or 1.0  # == a full build's float(doc_len.mean()): the sum is exact
        self._df = df
        self._idf = idf(self.n, df.astype(np.float64)).astype(np.float32)
        self._norm = length_norm(doc_len, avg)
        self._delta_norm = length_norm(delta_len, avg)
        # the delta's postings term-major: (row, count) of each term, in row order
        order = np.argsort(delta.terms, kind="stable")
        self._d_rows = np.repeat(np.arange(len(delta.ids)), np.diff(delta.indptr))[order]
        self._d_counts = delta.counts[order]
        self._d_indptr = np.concatenate([[0], np.cumsum(np.bincount(delta.terms, minlength=n_vocab))])
        self._n_base_vocab = n_base_vocab

    def __len__(self) -> int:
        return self.n

    def doc_freq(self, token: str) -> int:
        tid = self._vocab.get(token)
        return 0 if tid is None else int(self._df[tid])

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """As ``KeywordIndex.search`` on one index over base and delta: the same scores, ties by id."""
        tids = [tid for tid in (self._vocab.get(t) for t in tokens) if tid is not None]
        if k <= 0 or not tids or self.n == 0:
            return []
        base = np.zeros(len(self.base.ids), dtype=np.float32)
        added = np.zeros(len(self.delta.ids), dtype=np.float32)
        for tid in tids:
            weight = self._idf[tid]
            if tid < self._n_base_vocab:
                start, end = int(self._indptr[tid]), int(self._indptr[tid + 1])
                _accumulate(base, np.asarray(self._indices[start:end]), self._tf_by_term[start:end], self._norm, weight)
            start, end = int(self._d_indptr[tid]), int(self._d_indptr[tid + 1])
            if end > start:
                _accumulate(added, self._d_rows[start:end], self._d_counts[start:end], self._delta_norm, weight)
        base[self._tomb] = 0.0
        hits = _top(self.base.ids, base, k) + _top(self.delta.ids, added, k)
        hits.sort(key=lambda hit: (-hit[1], hit[0]))
        return hits[:k]


def _accumulate(scores: np.ndarray, rows: np.ndarray, counts: np.ndarray, norm: np.ndarray, idf32: np.floating) -> None:
    """``scores[rows] += tf / (norm + tf) * idf``, float32, in the order of ``term_weights`` (rows are unique)."""
    tf = np.asarray(counts, dtype=np.float32)
    weights = np.take(norm, rows)
    weights += tf
    np.divide(tf, weights, out=weights)
    weights *= idf32
    np.add.at(scores, rows, weights)  # as bm25s adds its stored weights (3x faster than ``scores[rows] +=``)


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Up to ``k`` (id, score) with a positive score, best first, ties by row.

    Only passages holding a query word score above 0, so the selection runs
    among those, not among every passage (a partition of all 100,000 scores
    was the largest cost of a keyword search). Rows tied with the k-th score
    are all candidates, so which of them make the cut does not depend on the
    partition (a full build and a delta agree).
    """
    k = int(k)
    if k <= 0:
        return []
    hit = np.flatnonzero(scores > 0)
    if len(hit) > k:
        kth = np.partition(scores[hit], len(hit) - k)[len(hit) - k]
        hit = hit[scores[hit] >= kth]
    top = hit[np.lexsort((hit, -scores[hit]))][:k]
    return [(int(ids[i]), float(scores[i])) for i in top]


def _count_type(counts: np.ndarray) -> type:
    return np.uint16 if not len(counts) or int(counts.max()) < 2**16 else np.int32


def library_version() -> str:
    return str(_bm25s().__version__)
