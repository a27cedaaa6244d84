"""Abstention: whether the bot answers or says the collection does not hold the answer, and why.

Every rule and threshold of that decision is here; the signals are measured
where their data is (``retrieve.coverage`` and ``retrieve.missing_names``
over the ranked passages, ``lead.has_evidence`` over the sentences the lead
is picked from) and ``pipeline.Asker.answer`` hands them to ``decide``.

Raw dense scores of multilingual-e5 sit around 0.8–0.9 for answerable and
unanswerable questions alike, so the dense score alone decides little:

* ``coverage``: the IDF-weighted share of the question's content words found
  in the best passages. A question about 北京 in a collection that never
  mentions 北京 covers little, whatever its embedding says.
* ``dense``: the cosine similarity of the best passage to the question.

The bot abstains when coverage is below ``MIN_COVERAGE``, or when coverage is
below ``WEAK_COVERAGE`` *and* the dense score is below ``MIN_DENSE``. Raising
any of the three makes the bot stricter (it abstains more often). Two more
signals come from the question's meaning: a place or organisation it names
that the collection never mentions (``missing``), and a count, exact date or
contact detail asked for that no top passage holds near the question's words
(``evidenced``); either one abstains. Before all of these: nothing retrieved,
or a question with no searchable word at all (emoji, punctuation, symbols).

The subject rule (``subject``): the question's distinctive terms (``qa/subject.py``: titles in 《》,
quoted terms, Latin names, numbers, words rare in the collection and in general Chinese, runs of
single characters jieba does not know) must be mentioned by one of the top articles. When the best
of them mentions less than ``MIN_SUBJECT`` of those terms (IDF-weighted) and the best cosine is under
``SUBJECT_DENSE`` (a close paraphrase may name its subject differently), the article is about
something else: a question about one actor is not answered from another actor's article.
Both thresholds were read off the tuning seeds of ``benchmarks/answerability.py`` and reported on
held-out seeds (docs/retrieval.md, "Abstention").
"""

from __future__ import annotations

from typing import NamedTuple

# Thresholds; higher = stricter. Chosen with benchmarks/tune_retrieval.py --grid
# on the public set and CMRC (README, "Abstention"); round values, on the lenient
# side: a wrong abstention still shows the passages as "possibly related", wrong
# confidence shows noise.
MIN_COVERAGE = 0.25
WEAK_COVERAGE = 0.6
MIN_DENSE = 0.82
MIN_SUBJECT = 0.6
SUBJECT_DENSE = 0.87

# The reasons ``decide`` gives, one per rule, in the order the rules are tried.
NO_HITS = "no_hits"  # retrieval returned nothing
NO_WORDS = "no_words"  # the question holds no word to search for
NO_EVIDENCE = "no_evidence"  # no top passage holds an answer of the asked type
LOW_COVERAGE = "low_coverage"  # too little of the question is in the best passages
MISSING_NAME = "missing_name"  # a named place or organisation the collection never mentions
OTHER_SUBJECT = "other_subject"  # no top article mentions what the question is about
WEAK_MATCH = "weak_match"  # the dense score is low and coverage does not make up for it


class Decision(NamedTuple):
    abstain: bool
    reason: str | None  # one of the reasons above; None when the bot answers


def decide(
    *,
    hits: int,
    words: int,
    coverage: float | None,
    dense: float,
    missing: int = 0,
    evidenced: bool = True,
    subject: float | None = None,
) -> Decision:
    """Answer or abstain, from the signals of one question (see the module docstring).

    ``hits``: passages retrieved; ``words``: searchable words in the query;
    ``coverage``: None when the query has no content words (什么是…？ with an
    unknown term cut to pieces), and then the dense score alone decides;
    ``missing``: named places and organisations the collection never mentions;
    ``subject``: the share of the question's distinctive terms the best top article mentions
    (None when the question has none).
    """
    if not hits:
        return Decision(True, NO_HITS)
    if not words:
        return Decision(True, NO_WORDS)
    if not evidenced:
        return Decision(True, NO_EVIDENCE)
    if subject is not None and subject < MIN_SUBJECT and dense < SUBJECT_DENSE:
        return Decision(True, OTHER_SUBJECT)
    if coverage is None:
        return Decision(True, WEAK_MATCH) if dense < MIN_DENSE else Decision(False, None)
    if coverage < MIN_COVERAGE:
        return Decision(True, LOW_COVERAGE)
    if missing and coverage < 1.0:  # unless every piece of the question's words was found
        return Decision(True, MISSING_NAME)
    if coverage < WEAK_COVERAGE and dense < MIN_DENSE:
        return Decision(True, WEAK_MATCH)
    return Decision(False, None)
