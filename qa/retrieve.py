"""Hybrid retrieval: BM25 and dense candidates fused, overlaps trimmed, abstention decided.

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
any of the three makes the bot stricter (it abstains more often). Two more
signals come from the question's meaning (``pipeline.Bot.answer``): a place
or organisation it names that the collection never mentions
(``missing_names``), and a count, exact date or contact detail asked for that
no top passage holds near the question's words (``answer.has_evidence``);
either one abstains.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Callable, Sequence

from .chunk import split_sentences
from .text import CJK_RANGES
from .types import Document, Hit, Passage

# Abstention thresholds; higher = stricter. Chosen with
# benchmarks/tune_retrieval.py --grid on the public set and CMRC (README,
# "Abstention"); round values, on the lenient side: a wrong abstention still
# shows the passages as "possibly related", wrong confidence shows noise.
MIN_COVERAGE = 0.25
WEAK_COVERAGE = 0.6
MIN_DENSE = 0.82
# The share of the question's distinctive terms (qa/subject.py) that the best of the top three articles must
# mention, unless the best passage's cosine reaches SUBJECT_DENSE (a close paraphrase); benchmarks/answerability.py.
MIN_SUBJECT = 0.6
SUBJECT_DENSE = 0.87

_CJK_WORD = re.compile(f"[{CJK_RANGES}]+")

DENSE_WEIGHT = 0.5  # share of the dense score in the fused score
CANDIDATES = 50  # candidates taken from each retriever before fusion
MAX_PER_DOC: int | None = None  # passages one article may hold in the top k (None: no cap)


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


def merge_overlaps(
    hits: Sequence[Hit],
    per_doc: int | None = None,
    join_limit: int | None = None,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    """Show each stretch of an article once, as passages a reader can check.

    Neighbouring passages share a sentence (the chunk overlap), so two hits
    side by side would show it twice. Joining them, as this once did, grew
    transitively into article-long "citations" (2,000+ characters that the
    viewer highlighted whole). Instead a hit keeps its own span minus what a
    better hit of the same article already shows: the shared sentence is
    trimmed from the weaker one, and a hit with nothing left is dropped. So
    no citation is longer than its passage, and each remains a true slice of
    the cleaned article. ``per_doc`` caps how many passages one article may
    contribute (None: no cap); README "Retrieval" gives the measurement.

    Two neighbours are shown as one passage only while the union stays
    within ``join_limit`` plus the shared part. When it would not, and the
    question's word ``weights`` are given, the better hit is re-centred on
    the window of whole sentences (at most ``join_limit`` characters) of the
    two that holds the most of the question: an answer often sits just past
    the edge of the passage that ranked first.
    """
    kept: list[Hit] = []
    per: dict[str, int] = {}
    for hit in hits:  # best first
        doc_id = hit.passage.doc_id
        if join_limit is not None and _join_into(kept, hit, join_limit, weights):
            continue
        if per_doc is not None and per.get(doc_id, 0) >= per_doc:
            continue
        span: tuple[int, int] | None = (hit.passage.start, hit.passage.end)
        for other in kept:
            if span is not None and other.passage.doc_id == doc_id:
                span = _subtract(span, (other.passage.start, other.passage.end))
        if span is not None:
            span = _strip(hit.document.text, span)
        trimmed = span != (hit.passage.start, hit.passage.end)
        if span is None or (trimmed and span[1] - span[0] < MIN_CITATION):
            continue  # a whole passage is kept however short (a short article is one)
        if span != (hit.passage.start, hit.passage.end):
            hit = _with_span(hit, *span)
        kept.append(hit)
        per[doc_id] = per.get(doc_id, 0) + 1
    return kept


def _join_into(kept: list[Hit], hit: Hit, limit: int, weights: dict[str, float] | None = None) -> bool:
    """Join ``hit`` into the one kept hit it overlaps when the union stays within ``limit`` plus the shared part.

    Otherwise (False) the kept hit may be re-centred (see ``merge_overlaps``) and ``hit`` is trimmed by the caller.
    """
    p = hit.passage
    touching = [i for i, k in enumerate(kept) if k.passage.doc_id == p.doc_id and
                p.start < k.passage.end and k.passage.start < p.end]
    if len(touching) != 1:
        return False
    other = kept[touching[0]].passage
    start, end = min(p.start, other.start), max(p.end, other.end)
    shared = min(p.end, other.end) - max(p.start, other.start)
    if end - start > limit + shared:
        if weights:
            text = kept[touching[0]].document.text
            window = _best_window(text, start, end, limit + shared, weights, (other.start, other.end))
            if window != (other.start, other.end):
                kept[touching[0]] = _with_span(kept[touching[0]], *window)
        return False
    kept[touching[0]] = _with_span(kept[touching[0]], start, end, ordinal=min(p.ordinal, other.ordinal))
    return True


def _best_window(
    text: str, start: int, end: int, limit: int, weights: dict[str, float], prefer: tuple[int, int]
) -> tuple[int, int]:
    """The run of whole sentences in ``text[start:end]`` within ``limit`` that covers the most question weight.

    Among runs holding the same words, the one that mentions them most wins (IDF x log(1 + count)):
    an article's opening names its subject again and again, a later stretch once. Then the run that
    shares most with ``prefer`` (the passage that ranked).
    """
    spans = [(start + s, start + e) for s, e in split_sentences(text[start:end])]
    best: tuple[float, float, int, tuple[int, int]] = (-1.0, -1.0, -1, prefer)
    for i in range(len(spans)):
        j = i
        while j + 1 < len(spans) and spans[j + 1][1] - spans[i][0] <= limit:
            j += 1
        lo, hi = spans[i][0], spans[j][1]
        if hi - lo > limit and j > i:
            continue
        lowered = text[lo:hi].lower()
        weight = sum(w for word, w in weights.items() if word in lowered)
        mentions = sum(w * math.log1p(lowered.count(word)) for word, w in weights.items())
        shared = min(hi, prefer[1]) - max(lo, prefer[0])
        if (weight, mentions, shared) > best[:3]:
            best = (weight, mentions, shared, (lo, hi))
    return best[3]


def _with_span(hit: Hit, start: int, end: int, ordinal: int | None = None) -> Hit:
    passage = replace(hit.passage, start=start, end=end, text=hit.document.text[start:end])
    if ordinal is not None:
        passage = replace(passage, ordinal=ordinal)
    return replace(hit, passage=passage)


MIN_CITATION = 30  # characters; a trimmed remainder shorter than this is no passage worth citing


def _subtract(span: tuple[int, int], taken: tuple[int, int]) -> tuple[int, int] | None:
    """``span`` without the part ``taken`` covers; the longer side when ``taken`` sits inside it."""
    (start, end), (t_start, t_end) = span, taken
    if t_end <= start or end <= t_start:
        return span
    left, right = (start, max(start, t_start)), (min(end, t_end), end)
    best = max(left, right, key=lambda s: s[1] - s[0])
    return best if best[1] > best[0] else None


def _strip(text: str, span: tuple[int, int]) -> tuple[int, int] | None:
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


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


def decide(
    cover: float | None, dense: float, missing: int = 0, evidenced: bool = True, subject: float | None = None
) -> bool:
    """True when the bot should abstain (see the module docstring).

    A question with no content words (什么是…？ with an unknown term cut to
    pieces) has no coverage; the dense score alone decides then. ``subject``:
    the share of the question's distinctive terms the best top article
    mentions (``subject.best``; None when the question has none).
    """
    if not evidenced:
        return True
    if subject is not None and subject < MIN_SUBJECT and dense < SUBJECT_DENSE:
        return True
    if cover is None:
        return dense < MIN_DENSE
    if cover < MIN_COVERAGE:
        return True
    if missing and cover < 1.0:  # a place or body the collection never names (unless its pieces all are)
        return True
    return cover < WEAK_COVERAGE and dense < MIN_DENSE


def missing_names(names: Sequence[str], doc_freq: Callable[[str], int], articles: Sequence[str]) -> list[str]:
    """The places and organisations of the question that the collection never mentions.

    Absent means: no indexed word is the name or its first two characters
    (the proper part of 北京市公安局, 上海市浦东新区), and no article among the
    top hits contains it. The second test catches names jieba cuts into
    pieces (乍都节公园); retrieval would have ranked an article naming them.
    """
    joined = "\n".join(articles)
    return [
        n for n in names
        if doc_freq(n.lower()) == 0 and (len(n) <= 2 or doc_freq(n[:2].lower()) == 0) and n not in joined
    ]


def rank(
    fused: dict[int, float],
    dense: Sequence[tuple[int, float]],
    keyword: Sequence[tuple[int, float]],
    lookup: Callable[[Sequence[int]], list[tuple[Passage, Document]]],
    k: int,
    join_limit: int | None = None,
    weights: dict[str, float] | None = None,
) -> list[Hit]:
    """Turn fused scores into de-duplicated passage hits, best first."""
    dense_of = dict(dense)
    keyword_of = dict(keyword)
    order = sorted(fused, key=lambda pid: -fused[pid])[: max(k * 3, k + 5)]
    rows = lookup(order)
    hits = [
        Hit(passage=p, document=d, score=float(fused[pid]), dense=dense_of.get(pid), keyword=keyword_of.get(pid))
        for pid, (p, d) in zip(order, rows, strict=True)
    ]
    return merge_overlaps(hits, MAX_PER_DOC, join_limit, weights)[:k]


def best_dense(dense: Sequence[tuple[int, float]]) -> float:
    return float(max((s for _, s in dense), default=0.0))

