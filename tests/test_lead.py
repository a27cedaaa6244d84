"""The lead (the sentences shown first) and the answer-type evidence, on hand-made passages (no model needed)."""

from __future__ import annotations

from qa import lead, question
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
    return "".join(s.text for s in lead.pick(q, hits, _weights(*words)))


def test_a_count_lead_holds_the_classifier_asked_for():
    hits = _hits(("新闻", "车站公交车去年运送乘客120万人次。车站现有公交车86辆。", 1.0))
    first = lead.pick("车站有多少辆公交车？", hits, _weights("车站", "公交车"))[0]
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
    assert not lead.has_evidence(question.analyse("车站有多少辆公交车？"), "车站有多少辆公交车？", hits, weights)
    assert lead.has_evidence(question.analyse("车站有多少名工作人员？"), "车站有多少名工作人员？", hits, weights)
    assert not lead.has_evidence(question.analyse("车站的联系电话是多少？"), "车站的联系电话是多少？", hits, weights)


def test_clauses_joined_by_a_semicolon_are_one_lead_sentence():
    text = "牡蒿为菊科植物。多年生草本，茎直立；叶子互生，先端作羽状三裂；头状花序卵形。分布于亚洲。"
    lead_text = _lead("牡蒿的外貌特征是什么？", _hits(("牡蒿", text, 1.0)), "外貌", "特征")
    assert "多年生草本，茎直立；叶子互生，先端作羽状三裂；头状花序卵形。" in lead_text


def test_a_sentence_that_points_back_brings_the_one_before_it():
    text = (
        "次磷酸可以将碘还原为氢碘酸，而氢碘酸可以制得冰毒。"
        "因此，次磷酸被列为第一类易制毒化学品，购买及使用受到严格管制。"
        "次磷酸盐可由白磷与热碱溶液反应制得。"
    )
    hits = _hits(("次磷酸", text, 1.0))
    sentences = lead.pick("为什么次磷酸的购买受到严格管制？", hits, _weights("购买", "严格", "管制"))
    assert [s.text[:4] for s in sentences] == ["次磷酸可", "因此，次"]


def test_sentences_keep_a_semicolon_at_a_line_end_apart_from_the_next_line():
    text = "甲；乙。\n丙；\n丁。"
    assert [text[s:e] for s, e in lead.sentences(text)] == ["甲；乙。", "丙；", "丁。"]


def test_a_close_runner_up_is_shown_after_the_best_and_a_distant_one_is_not():
    """Two sentences that cover the question equally: a close call, so both are shown (best first); a
    sentence that covers nothing of it never joins, and a sentence two passages share is shown once."""
    text = "会议讨论了新的交通规划，与会者发言踊跃。天气晴朗，会场外秩序良好。交通规划的重点是地铁建设。"
    hits = _hits(("会议", text, 1.0), ("会议", text, 0.9))  # overlapping passages: the same sentences twice
    shown = [s.text for s in lead.pick("新的交通规划的重点是什么？", hits, _weights("交通规划", "新", "重点"))]
    assert "交通规划的重点是地铁建设。" in shown and "会议讨论了新的交通规划，与会者发言踊跃。" in shown
    assert len(shown) == len(set(shown)) and not any("天气" in s for s in shown)
    alone = [s.text for s in lead.pick("交通规划的重点是什么？", hits, _weights("交通规划", "重点"))]
    assert alone == ["交通规划的重点是地铁建设。"]  # the other sentence lacks 重点: not a close call
