"""Question types from the question's words (no model needed)."""

from __future__ import annotations

from qa import question


def test_question_types_come_from_the_question_words():
    cases = {
        "志愿服务队的队长是谁？": (question.WHO, None),
        "哪位辅警获得了表彰？": (question.WHO, None),
        "车站一共有多少辆公交车？": (question.COUNT, "辆"),
        "学校有多少名老师？": (question.COUNT, "名"),
        "图书馆是哪一年建成的？": (question.WHEN, "年"),
        "展览在什么时候开幕？": (question.WHEN, None),
        "博物馆位于哪里？": (question.WHERE, None),
        "活动包括哪些项目？": (question.WHICH, None),
        "公园里有哪几种花？": (question.WHICH, None),
        "为什么要修建水库？": (question.HOW, None),
        "服务中心的联系电话是多少？": (question.CONTACT, None),
        "这座桥的设计理念是什么？": (question.WHAT, None),
    }
    for q, (kind, classifier) in cases.items():
        asked = question.analyse(q)
        assert (asked.kind, asked.classifier) == (kind, classifier), q
