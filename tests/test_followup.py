"""Folding a follow-up into the earlier question, without a model or an index (jieba only)."""

from __future__ import annotations

import pytest

from qa.followup import interpret, is_followup

EARLIER = "滨州开发区交警大队有多少名党员民警？"


@pytest.mark.parametrize(
    "question",
    ["那海陵巡特警大队呢？", "还有泰州呢", "另外，海陵分局的情况怎么样？", "海陵呢", "海陵分局"],
)
def test_a_follow_up_is_known_by_its_opener_its_tail_or_its_shortness(question):
    assert is_followup(question)


@pytest.mark.parametrize("question", [EARLIER, "蒙阴交警大队的党建品牌叫什么？", "  海陵巡特警大队有多少名党员？  "])
def test_a_self_contained_question_is_no_follow_up(question):
    assert not is_followup(question)


def test_a_follow_up_takes_the_earlier_question_from_its_verb_on():
    assert interpret("那海陵巡特警大队呢？", [EARLIER]) == "海陵巡特警大队有多少名党员民警？"
    # only the owner before 的 is replaced: the asked-for thing stays
    assert interpret("泰州", ["蒙阴交警大队的党建品牌叫什么？"]) == "泰州的党建品牌叫什么？"


def test_without_a_verb_to_split_on_the_two_are_joined():
    assert interpret("还有泰州呢", ["蒙阴"]) == "泰州 蒙阴"


def test_a_follow_up_with_no_subject_of_its_own_repeats_the_earlier_question():
    assert interpret("那呢？", [EARLIER]) == EARLIER


def test_a_self_contained_question_is_unchanged():
    question = "海陵巡特警大队有多少名党员？"
    assert interpret(question, [EARLIER]) == question
    assert interpret(f"  {question} ", [EARLIER]) == question  # only trimmed


@pytest.mark.parametrize("history", [[], [""], ["  ", ""]])
def test_without_an_earlier_question_a_follow_up_stands_alone(history):
    assert interpret(" 那海陵巡特警大队呢？ ", history) == "那海陵巡特警大队呢？"


def test_in_a_long_history_the_latest_question_counts_and_blanks_are_skipped():
    history = [f"第{n}个问题是什么？" for n in range(50)] + [EARLIER, "", "   "]
    assert interpret("那海陵巡特警大队呢？", history) == "海陵巡特警大队有多少名党员民警？"
    latest = [*history, "蒙阴交警大队的党建品牌叫什么？"]
    assert interpret("那海陵巡特警大队呢？", latest) == "海陵巡特警大队的党建品牌叫什么？"
