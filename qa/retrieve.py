"""Hybrid retrieval: BM25 and dense candidates fused, overlaps merged, abstention decided.

Fusion is a weighted sum of per-query normalised scores (each list divided by
its own best score), which ``qa eval --fusion`` measures against reciprocal
rank fusion; see the README for the table that chose it.

Abstention rests on two signals, because raw dense scores of multilingual-e5
sit around 0.8–0.9 for answerable and unanswerable questions alike:

* ``coverage``: the IDF-weighted share of the question's content words found
  in the best passages. A question about 北京 in a collection that never
  mentions 北京 covers little, whatever its embedding says.
* ``dense``: the cosine similarity of the best passage to the question.

The bot abstains when coverage is below ``MIN_COVERAGE``, or when coverage is
below ``WEAK_COVERAGE`` *and* the dense score is below ``MIN_DENSE``. Raising
any of the three makes the bot stricter (it abstains more often).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Callable, Sequence

from .text import CJK_RANGES
from .types import Document, Hit, Passage

# Abstention thresholds; higher = stricter. Chosen with
# benchmarks/tune_retrieval.py --grid on the public set and CMRC (README,
# "Abstention"); round values, on the lenient side: a wrong abstention still
# shows the passages as "possibly related", wrong confidence shows noise.
MIN_COVERAGE = 0.25
WEAK_COVERAGE = 0.6
MIN_DENSE = 0.82

_CJK_WORD = re.compile(f"[{CJK_RANGES}]+")

DENSE_WEIGHT = 0.5  # share of the dense score in the fused score
CANDIDATES = 50  # candidates taken from each retriever before fusion


def fuse_weighted(
    dense: Sequence[tuple[int, float]], keyword: Sequence[tuple[int, float]], weight: float = DENSE_WEIGHT
) -> dict[int, float]:
    """Weighted sum of scores min-max normalised within each candidate list.

    Min-max matters for the dense list: e5 cosines of a question's candidates
    sit within a few hundredths of each other (0.82–0.89), so dividing by the
    best alone would make every candidate look equally good. A passage absent
    from one list gets nothing from it.
    """
    fused: dict[int, float] = {}
    for items, w in ((dense, weight), (keyword, 1.0 - weight)):
        if not items:
            continue
        scores = [score for _, score in items]
        low, high = min(scores), max(scores)
        span = high - low
        for pid, score in items:
            share = (score - low) / span if span > 0 else 1.0
            fused[pid] = fused.get(pid, 0.0) + w * share
    return fused


def fuse_rrf(
    dense: Sequence[tuple[int, float]], keyword: Sequence[tuple[int, float]], k: int = 60
) -> dict[int, float]:
    """Reciprocal rank fusion, kept for comparison in ``qa eval``."""
    fused: dict[int, float] = {}
    for items in (dense, keyword):
        for rank, (pid, _) in enumerate(items):
            fused[pid] = fused.get(pid, 0.0) + 1.0 / (k + rank + 1)
    return fused


def merge_overlaps(hits: Sequence[Hit]) -> list[Hit]:
    """Merge hits from one document whose spans overlap.

    Passages share a sentence of overlap, so two neighbouring hits would show
    that sentence twice. A merged hit spans all the passages it joins (a
    later hit can bridge two earlier ones), keeps the place and score of the
    best, and stays a true slice of the cleaned article.
    """
    merged: list[Hit] = []
    for hit in hits:  # best first
        touching = [i for i, kept in enumerate(merged) if _overlap(kept.passage, hit.passage)]
        if not touching:
            merged.append(hit)
            continue
        joined = merged[touching[0]]
        for i in touching[1:]:
            joined = _join(joined, merged[i])
        merged[touching[0]] = _join(joined, hit)
        for i in reversed(touching[1:]):
            del merged[i]
    return merged


def _overlap(a: Passage, b: Passage) -> bool:
    return a.doc_id == b.doc_id and b.start < a.end and a.start < b.end


def _join(kept: Hit, other: Hit) -> Hit:
    a, b = kept.passage, other.passage
    start, end = min(a.start, b.start), max(a.end, b.end)
    first = a if a.start <= b.start else b
    passage = replace(
        first, start=start, end=end, text=kept.document.text[start:end], ordinal=min(a.ordinal, b.ordinal)
    )
    return replace(kept, passage=passage, score=max(kept.score, other.score))


def idf_weights(words: Sequence[str], doc_freq: Callable[[str], int], total: int) -> dict[str, float]:
    """Smoothed inverse document frequency; unseen words weigh the most."""
    return {w: math.log(1.0 + (total + 1) / (doc_freq(w) + 0.5)) for w in words}


def coverage(words: Sequence[str], weights: dict[str, float], texts: Sequence[str]) -> float | None:
    """IDF-weighted share of ``words`` that occur in any of ``texts``; None without words.

    A word jieba cut wrongly (魏舒史 for the name 魏舒 + 史称) is credited by
    the share of its character pairs found, so a segmentation slip does not
    read as "the collection never mentions this".
    """
    total = sum(weights.get(w, 0.0) for w in words)
    if total <= 0:
        return None
    joined = "\n".join(texts).lower()
    found = sum(weights.get(w, 0.0) * _found(w, joined) for w in words)
    return found / total


def _found(word: str, text: str) -> float:
    if word in text:
        return 1.0
    if len(word) < 3 or not _CJK_WORD.fullmatch(word):
        return 0.0  # only Chinese words are mis-cut this way; Latin letter pairs match anything
    pairs = [word[i : i + 2] for i in range(len(word) - 1)]
    return sum(pair in text for pair in pairs) / len(pairs)


def decide(cover: float | None, dense: float) -> bool:
    """True when the bot should abstain (see the module docstring).

    A question with no content words (什么是…？ with an unknown term cut to
    pieces) has no coverage; the dense score alone decides then.
    """
    if cover is None:
        return dense < MIN_DENSE
    if cover < MIN_COVERAGE:
        return True
    return cover < WEAK_COVERAGE and dense < MIN_DENSE


def rank(
    fused: dict[int, float],
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    lookup: Callable[[Sequence[int]], list[tuple[Passage, Document]]],
    k: int,
) -> list[Hit]:
    """Turn fused scores into merged, de-duplicated hits, best first."""
    dense_of = dict(dense)
    keyword_of = dict(keyword)
    order = sorted(fused, key=lambda pid: -fused[pid])[: max(k * 3, k + 5)]
    rows = lookup(order)
    hits = [
        Hit(passage=p, document=d, score=float(fused[pid]), dense=dense_of.get(pid), keyword=keyword_of.get(pid))
        for pid, (p, d) in zip(order, rows, strict=True)
    ]
    return merge_overlaps(hits)[:k]


def best_dense(dense: Sequence[tuple[int, float]]) -> float:
    return float(max((s for _, s in dense), default=0.0))

