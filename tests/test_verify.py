"""The check of a written answer (qa/verify.py): fast, no model, no network."""

from __future__ import annotations

from qa import verify
from qa.types import Document, Hit, Passage


def _hit(doc_id: str, title: str, body: str, date: str | None = "2014-05-01") -> Hit:
    doc = Document(doc_id, f"/x/{doc_id}.txt", title, body, "h", source="滨州日报", date=date)
    return Hit(Passage(doc_id, 0, body, 0, len(body)), doc, 0.9)


HITS = [
    _hit(
        "a",
        "记滨州经济技术开发区交警大队党支部",
        "这是一个基层党组织。43名党员民警无论寒冬酷暑都会时刻维护交通秩序。该队自2005年成立以来未发生违法违纪案件。",
    ),
    _hit("b", "迪庆交警", "支队长高玉林带领民警深入果咱底村开展慰问活动，发放联系卡88张。"),
]
QUESTION = "滨州经济技术开发区交警大队党支部有多少名党员民警？"


def test_split_reads_markers_before_and_after_the_end_mark() -> None:
    pieces = verify.split("第一句[1]。第二句。[2][1]\n第三句，没有引用。[1, 2]")
    assert [(p.text, p.citations) for p in pieces] == [
        ("第一句。", (1,)), ("第二句。", (2, 1)), ("第三句，没有引用。", (1, 2))
    ]


def test_faithful_sentence_is_kept_with_its_citation() -> None:
    [s] = verify.check("滨州经济技术开发区交警大队党支部有43名党员民警[1]。", QUESTION, HITS)
    assert s.supported and s.citations == [1]


def test_changed_number_is_refused_in_arabic_and_chinese() -> None:
    for reply in ("该队有44名党员民警[1]。", "该队有四十四名党员民警[1]。", "该队自2006年成立[1]。"):
        [s] = verify.check(reply, QUESTION, HITS)
        assert not s.supported and "数字" in s.why, reply
    [s] = verify.check("该队有四十三名党员民警[1]。", QUESTION, HITS)  # 四十三 = 43
    assert s.supported


def test_swapped_name_and_wrong_citation_are_refused() -> None:
    [s] = verify.check("支队长王宏带领民警深入果咱底村开展慰问活动[2]。", "", HITS)
    assert not s.supported and "名称" in s.why
    [s] = verify.check("43名党员民警时刻维护交通秩序[2]。", QUESTION, HITS)
    assert not s.supported
    [s] = verify.check("43名党员民警时刻维护交通秩序[7]。", QUESTION, HITS)
    assert not s.supported and "没有提供" in s.why


def test_invented_claim_is_refused() -> None:
    [s] = verify.check("该队还为辖区居民免费提供早餐和理发服务[1]。", QUESTION, HITS)
    assert not s.supported and "实词" in s.why


def test_uncited_sentence_gets_the_passage_that_supports_it() -> None:
    kept, lost = verify.check("发放联系卡88张。民警每周组织登山比赛。", "", HITS)
    assert kept.supported and kept.citations == [2]
    assert not lost.supported and lost.citations == []
    assert verify.shown([kept, lost]) == "发放联系卡88张。[2]"


def test_numbers_are_normalised() -> None:
    assert verify.numbers("百分之五十，1,200元，3万人，二〇一三年三月") >= {50.0, 1200.0, 30000.0, 2013.0, 3.0}
    assert verify.numbers("一个问题，第一批，十几双皮鞋") == frozenset()


def test_no_answer_reply_is_recognised() -> None:
    assert verify.says_no_answer(verify.NO_ANSWER)
    assert not verify.says_no_answer("该队有43名党员民警[1]。")
