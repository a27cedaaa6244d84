"""Question types and the lead that answers them, on hand-made passages (no model needed)."""

from __future__ import annotations

from qa import answer, question
from qa.types import Document, Hit, Passage


def _hits(*articles: tuple[str, str, float]) -> list[Hit]:
    """One hit per (title, text, score): the passage is the whole text of its article."""
    hits = []
    for number, (title, text, score) in enumerate(articles):
        doc = Document(doc_id=f"d{number}", path=f"/x/d{number}.txt", title=title, text=text, content_hash="h")
        passage = Passage(doc_id=doc.doc_id, ordinal=0, text=text, start=0, end=len(text))
        hits.append(Hit(passage=passage, document=doc, score=score))
    return hits


def _weights(*words: str) -> dict[str, float]:
    return {w: 1.0 for w in words}


def _lead(q: str, hits: list[Hit], *words: str) -> str:
    return "".join(s.text for s in answer.lead(q, hits, _weights(*words)))


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


def test_a_count_lead_holds_the_classifier_asked_for():
    hits = _hits(("新闻", "车站公交车去年运送乘客120万人次。车站现有公交车86辆。", 1.0))
    first = answer.lead("车站有多少辆公交车？", hits, _weights("车站", "公交车"))[0]
    assert "86辆" in first.text


def test_a_who_lead_reaches_back_for_the_name_a_pronoun_stands_for():
    text = "老党员张国华常年在最复杂的路口执勤,动作规范。几年下来,他磨坏了十几双皮鞋,被市民誉为“第一岗”。"
    hits = _hits(("交警", text, 1.0))
    assert "张国华" in _lead("被市民誉为第一岗的老党员是谁？", hits, "市民", "誉为", "第一岗", "老党员")


def test_the_lead_comes_from_the_article_that_names_the_asked_place():
    hits = _hits(
        ("苏州新闻", "交警大队现有党员民警52名,均在一线执勤。", 1.0),
        ("杭州新闻", "杭州交警大队坚持党建引领,队伍建设扎实,党员民警37名。", 0.3),
    )
    assert "37名" in _lead("杭州交警大队有多少名党员民警？", hits, "杭州", "交警大队", "党员", "民警")


def test_evidence_is_missing_when_no_passage_holds_the_asked_unit():
    hits = _hits(("车站", "车站现有工作人员86名,秩序良好。", 1.0))
    weights = _weights("车站", "公交车")
    assert not answer.has_evidence(question.analyse("车站有多少辆公交车？"), "车站有多少辆公交车？", hits, weights)
    assert answer.has_evidence(question.analyse("车站有多少名工作人员？"), "车站有多少名工作人员？", hits, weights)
    assert not answer.has_evidence(question.analyse("车站的联系电话是多少？"), "车站的联系电话是多少？", hits, weights)
