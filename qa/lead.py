"""The lead: the few sentences shown first, chosen from the top passages.

A reader wants the answer before the evidence. Sentences are taken only from
the passages retrieval ranked highest (so the lead is always backed by a
citation shown below it) and scored by how much of the question they cover,
weighted by IDF, plus the rank score of their passage. On top of that the
lead answers the *type* of question (``question.analyse``):

* a sentence that holds a candidate of the asked type (a name for 谁, a
  number with the asked classifier for 多少名, a date for 哪一年, a list for
  哪些 …) gains ``TYPE_BONUS``; any number still gains ``NUMBER_BONUS`` for a
  count question whose classifier no sentence matches;
* only passages whose article names the question's people, places and
  organisations compete, whenever some top passage's article does: a count of
  one unit must not answer a question about another unit;
* for a *who* question whose best sentence opens with 他/她 and names nobody,
  the sentence before it (which does) leads.

A sentence here ends at 。！？ or a line break, not at ；: clauses joined by
a semicolon (a plant's leaves; its flowers; its fruit) are one sentence to a
Chinese reader, and an answer that lists them is cut in pieces otherwise.
The lead is two sentences when the best one cannot stand alone: it opens by
pointing back (因此, 这, 其, 他 …), so the sentence before it joins; or the
next one scores nearly as well (``FOLLOW``), so it finishes the thought.

A close call is shown, not guessed: when the runner-up sentence scores within
``RUNNER_UP`` of the best, it joins the lead too (so a lead has at most three
sentences). Word overlap ranks the answering sentence second about as often as
all other misses together, and no cheap score separates the two: the
embedding model's cosine was tried and did not (docs/retrieval.md, "The lead").
On CMRC this raised the lead from 0.854 to 0.891 on seeds not tuned on, and
its length from 75 to 96 characters at the median (165 to 206 at the 90th
percentile); docs/retrieval.md has the curve over ``RUNNER_UP``.
"""

from __future__ import annotations

import re
from typing import Sequence

from . import question as q
from . import subject
from .chunk import split_sentences
from .types import Hit, LeadSentence

LEAD_PASSAGES = 3  # sentences come from this many top hits
PASSAGE_WEIGHT = 0.35  # share of the passage's fused score in a sentence's score
MAX_LEAD = 3  # sentences in the lead: the best, the one it leans on or that finishes it, a close runner-up
RUNNER_UP = 0.8  # of the best score: a runner-up this close joins the lead (chosen on even-numbered CMRC articles)
TYPE_BONUS = 0.3  # a sentence holding a candidate of the asked type
NUMBER_BONUS = 0.1  # a number of another classifier, for a count question
KIND_SHARE = {q.WHICH: 0.5, q.HOW: 0.0, q.WHAT: 0.0}  # of TYPE_BONUS: a list mark (、) is weak evidence
FOCUS_WEIGHT = 0.2  # a sentence's share of the question's focus characters (subject.focus)
FOLLOW = {q.HOW: 0.5}  # of the best score, for the next sentence to join it (else FOLLOW_ANY): an explanation
# often follows a sentence that restates the why-question (AltiVec提高…效率。这将有助于…)
FOLLOW_ANY = 0.6
# A sentence that opens by pointing back (a consequence, a demonstrative, a pronoun) leans on the one before it.
LEANS_BACK = re.compile(r"(?:因此|所以|于是|因而|故而|从而|然后|由此|这|此|其|该|[他她它牠])")
NAME_REACH = 2  # sentences a who-lead may reach back for the name a pronoun stands for


def pick(
    question: str, hits: Sequence[Hit], weights: dict[str, float], asked: q.Asked | None = None
) -> list[LeadSentence]:
    """Pick up to ``MAX_LEAD`` sentences from the top hits that best answer ``question``."""
    if not hits:
        return []
    asked = asked or q.analyse(question)
    total = sum(weights.values()) or 1.0
    pool = list(enumerate(hits[:LEAD_PASSAGES], start=1))
    top_score = max(h.score for _, h in pool) or 1.0
    pool = [(rank, hit) for rank, hit in pool if rank in naming_articles(asked, [h for _, h in pool])]
    scored: list[tuple[float, int, int, str]] = []  # score, citation, position, sentence
    for rank, hit in pool:
        text = hit.passage.text
        asks = subject.focus(question, hit.document.title)
        for position, (start, end) in enumerate(sentences(text)):
            sentence = text[start:end].strip()
            if len(sentence) < 4:
                continue
            # the title names what the whole article is about (the unit a count belongs to)
            lowered = f"{sentence}\n{hit.document.title}".lower()
            cover = sum(w for word, w in weights.items() if word in lowered) / total
            score = (1 - PASSAGE_WEIGHT) * cover + PASSAGE_WEIGHT * hit.score / top_score
            if asks:
                score += FOCUS_WEIGHT * len(asks & set(sentence.lower())) / len(asks)
            if q.holds(asked, sentence, question):
                score += TYPE_BONUS * KIND_SHARE.get(asked.kind, 1.0)
            elif asked.kind == q.COUNT and q.holds(q.Asked(q.COUNT), sentence):
                score += NUMBER_BONUS
            scored.append((score, rank, position, sentence))
    if not scored:
        return []
    scored.sort(key=lambda item: -item[0])
    best = scored[0]
    if asked.kind == q.WHO and not q.holds(asked, best[3], question) and q.PRONOUN.search(best[3]):
        named = _named_before(question, asked, hits, pool, best)
        if named:
            return [named, LeadSentence(text=best[3], citation=best[1])]
    neighbours = {item[2] - best[2]: item for item in scored if item[1] == best[1] and abs(item[2] - best[2]) == 1}
    chosen = [best]
    if -1 in neighbours and LEANS_BACK.match(best[3]):
        chosen.insert(0, neighbours[-1])  # 因此… / 这… / 他…: what it points back to comes first
    elif 1 in neighbours and neighbours[1][0] >= FOLLOW.get(asked.kind, FOLLOW_ANY) * best[0]:
        chosen.append(neighbours[1])  # nearly as good: it usually finishes the thought the first one started
    shown = {item[3] for item in chosen}  # passages overlap: the same sentence may be scored twice
    runner_up = next((item for item in scored[1:] if item[3] not in shown), None)
    if runner_up and runner_up[0] >= RUNNER_UP * best[0]:
        chosen.append(runner_up)  # a close call: the reader sees both candidates, best first
    return [LeadSentence(text=sentence, citation=rank) for _, rank, _, sentence in chosen[:MAX_LEAD]]


def sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` as a reader counts them: ``chunk.split_sentences`` with the clauses a
    semicolon joins kept together (叶互生；花顶生；果为蒴果。 is one sentence)."""
    spans: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        if spans and text[spans[-1][1] - 1] in "；;" and "\n" not in text[spans[-1][1] : start]:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _named_before(question: str, asked: q.Asked, hits: Sequence[Hit], pool, best) -> LeadSentence | None:
    """The nearest of the ``NAME_REACH`` sentences before ``best`` that names a person, from any shown passage.

    Its subject is a pronoun, so the name sits just before it, often in the
    neighbouring passage (the shared sentence is shown only there).
    """
    _, rank, _, sentence = best
    hit = dict(pool)[rank]
    doc, at = hit.passage.doc_id, hit.passage.start + hit.passage.text.find(sentence)
    before: list[tuple[int, int, str]] = []  # end offset in the article, citation, sentence
    for citation, other in enumerate(hits, start=1):
        if other.passage.doc_id != doc:
            continue
        text = other.passage.text
        for start, end in split_sentences(text):
            if other.passage.start + end <= at:
                before.append((other.passage.start + end, citation, text[start:end].strip()))
    before.sort(reverse=True)
    seen: set[int] = set()
    for end, citation, candidate in before:
        if len(seen) >= NAME_REACH:
            break
        seen.add(end)
        if q.holds(asked, candidate, question):
            return LeadSentence(text=candidate, citation=citation)
    return None


def naming_articles(asked: q.Asked, hits: Sequence[Hit]) -> set[int]:
    """1-based ranks of the hits whose article names the most of the question's entities (all when none does)."""
    named = [sum(e in f"{h.document.title}\n{h.document.text}" for e in asked.entities) for h in hits]
    most = max(named, default=0)
    return {rank for rank, n in enumerate(named, start=1) if n == most}


def has_evidence(asked: q.Asked, question: str, hits: Sequence[Hit], weights: dict[str, float]) -> bool:
    """Whether a top passage holds a candidate of the asked type in a sentence with a key term of the question.

    An abstention signal (``abstain.decide`` weighs it), computed here because
    it reads the same sentences of the same top passages the lead is picked
    from. Only a number, a year or date asked for exactly (哪一年, 哪天) or a
    contact detail is checked this way; other types always count as evidenced.
    """
    if asked.kind not in EVIDENCED or (asked.kind == q.WHEN and asked.classifier is None):
        return True  # 什么时候 is as often answered by 高二的时候 or 白垩纪 as by a date
    keys = list(weights)
    for hit in hits[:LEAD_PASSAGES]:
        text = hit.passage.text
        for start, end in split_sentences(text):
            sentence = text[start:end]
            lowered = sentence.lower()
            if any(k in lowered for k in keys) and q.holds(asked, sentence, question):
                return True
    return False


EVIDENCED = (q.COUNT, q.WHEN, q.CONTACT)  # a name is not checked: open-domain answers to 谁 are often no name
