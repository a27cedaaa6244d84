"""The abstention decision, one signal at a time: each alone turns an answer into an abstention, with its reason."""

from __future__ import annotations

import pytest

from qa import abstain
from qa.abstain import Decision

# Every signal on the answering side, comfortably: a question the bot answers.
CLEAR = {"hits": 5, "words": 3, "coverage": 0.9, "dense": 0.9, "missing": 0, "evidenced": True}


def test_clear_signals_answer_without_a_reason():
    assert abstain.decide(**CLEAR) == Decision(False, None)


@pytest.mark.parametrize(
    ("signal", "value", "reason"),
    [
        ("hits", 0, abstain.NO_HITS),  # retrieval found nothing
        ("words", 0, abstain.NO_WORDS),  # emoji, punctuation, symbols: nothing to search for
        ("evidenced", False, abstain.NO_EVIDENCE),  # asks for a count no top passage holds
        ("coverage", abstain.MIN_COVERAGE - 0.01, abstain.LOW_COVERAGE),  # the passages hold little of the question
        ("missing", 1, abstain.MISSING_NAME),  # a named place the collection never mentions
    ],
)
def test_each_signal_alone_abstains_with_its_reason(signal, value, reason):
    assert abstain.decide(**{**CLEAR, signal: value}) == Decision(True, reason)


def test_a_weak_dense_score_abstains_only_with_weak_coverage():
    weak = abstain.MIN_DENSE - 0.01
    assert abstain.decide(**{**CLEAR, "dense": weak}) == Decision(False, None)  # good coverage makes up for it
    partial = abstain.WEAK_COVERAGE - 0.01
    assert abstain.decide(**{**CLEAR, "coverage": partial}) == Decision(False, None)  # a good dense score does
    assert abstain.decide(**{**CLEAR, "coverage": partial, "dense": weak}) == Decision(True, abstain.WEAK_MATCH)
    assert abstain.decide(**{**CLEAR, "coverage": 1.0, "dense": 0.0}) == Decision(False, None)  # every word found


def test_without_content_words_the_dense_score_alone_decides():
    """什么是…？ with an unknown term cut to pieces: no coverage, and a missing name does not count either."""
    assert abstain.decide(**{**CLEAR, "coverage": None, "dense": abstain.MIN_DENSE - 0.01}).reason == abstain.WEAK_MATCH
    assert abstain.decide(**{**CLEAR, "coverage": None, "dense": abstain.MIN_DENSE + 0.01}) == Decision(False, None)
    assert not abstain.decide(**{**CLEAR, "coverage": None, "missing": 1}).abstain


def test_a_missing_name_is_not_missing_when_every_word_was_found():
    assert abstain.decide(**{**CLEAR, "coverage": 1.0, "missing": 1}) == Decision(False, None)  # found, if in pieces


def test_the_first_failing_rule_gives_the_reason():
    nothing = {"hits": 0, "words": 0, "coverage": 0.0, "dense": 0.0, "missing": 2, "evidenced": False}
    assert abstain.decide(**nothing).reason == abstain.NO_HITS
    assert abstain.decide(**{**nothing, "hits": 1}).reason == abstain.NO_WORDS
    assert abstain.decide(**{**nothing, "hits": 1, "words": 1}).reason == abstain.NO_EVIDENCE


def test_an_article_that_does_not_name_the_subject_does_not_answer_unless_it_is_a_close_paraphrase():
    off = abstain.MIN_SUBJECT - 0.01
    near = abstain.SUBJECT_DENSE - 0.01
    assert abstain.decide(**{**CLEAR, "dense": near, "subject": off}) == Decision(True, abstain.OTHER_SUBJECT)
    assert abstain.decide(**{**CLEAR, "dense": abstain.SUBJECT_DENSE, "subject": off}) == Decision(False, None)
    assert abstain.decide(**{**CLEAR, "dense": near, "subject": abstain.MIN_SUBJECT}) == Decision(False, None)
    assert abstain.decide(**{**CLEAR, "dense": near, "subject": None}) == Decision(False, None)  # no distinctive term
