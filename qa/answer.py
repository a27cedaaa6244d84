"""The lead: the sentence or two shown first, chosen from the top passages.

A reader wants the answer before the evidence. Sentences are taken only from
the passages retrieval ranked highest (so the lead is always backed by a
citation shown below it) and scored by how much of the question they cover,
weighted by IDF, plus the rank score of their passage. Questions that ask for
a quantity or a time (多少, 几, 哪年, 何时 …) prefer sentences with a number.
"""

from __future__ import annotations

import re
from typing import Sequence

from .chunk import split_sentences
from .types import Hit, LeadSentence

LEAD_PASSAGES = 3  # sentences come from this many top hits
PASSAGE_WEIGHT = 0.35  # share of the passage's fused score in a sentence's score
MAX_LEAD = 2  # sentences in the lead

_QUANTITY = re.compile(
    r"多少|几[个名次项年岁人位条家天月号]|几|哪一?年|何时|什么时候|哪天|多久|多长|多大|多高|比例|百分"
)
_NUMBER = re.compile(r"[0-9０-９]|[一二三四五六七八九十百千万亿两]+[个名次项年岁人位条家天月号件余多%％]")


def lead(question: str, hits: Sequence[Hit], weights: dict[str, float]) -> list[LeadSentence]:
    """Pick up to ``MAX_LEAD`` sentences from the top hits that best answer ``question``."""
    if not hits:
        return []
    wants_number = bool(_QUANTITY.search(question))
    total = sum(weights.values()) or 1.0
    top_score = max(h.score for h in hits[:LEAD_PASSAGES]) or 1.0
    scored: list[tuple[float, int, int, str]] = []  # score, citation, position, sentence
    for rank, hit in enumerate(hits[:LEAD_PASSAGES], start=1):
        text = hit.passage.text
        for position, (start, end) in enumerate(split_sentences(text)):
            sentence = text[start:end].strip()
            if len(sentence) < 4:
                continue
            lowered = sentence.lower()
            cover = sum(w for word, w in weights.items() if word in lowered) / total
            score = (1 - PASSAGE_WEIGHT) * cover + PASSAGE_WEIGHT * hit.score / top_score
            if wants_number and _NUMBER.search(sentence):
                score += 0.15
            scored.append((score, rank, position, sentence))
    if not scored:
        return []
    scored.sort(key=lambda item: -item[0])
    best = scored[0]
    chosen = [best]
    # A second sentence only when it is the next one in the same passage and
    # nearly as good: it usually finishes the thought the first one started.
    for item in scored[1:]:
        if item[1] == best[1] and item[2] == best[2] + 1 and item[0] >= 0.8 * best[0]:
            chosen.append(item)
            break
    return [LeadSentence(text=sentence, citation=rank) for _, rank, _, sentence in chosen[:MAX_LEAD]]
