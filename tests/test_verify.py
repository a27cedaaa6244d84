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
    assert verify.numbers("一个问题，第一批，十几双皮鞋", claimed=True) == frozenset()


def test_a_number_written_with_wan_is_compared_by_its_value() -> None:
    counted = [_hit("e", "海陵巡特警", "疫情期间共核查人员15000人次，处置警情386起。")]
    for reply in ("核查人员1.5万人次[1]。", "核查人员一万五千人次[1]。", "核查人员15,000人次[1]。"):
        [s] = verify.check(reply, "", counted)
        assert s.supported, (reply, s.why)
    for reply in ("核查人员1.6万人次[1]。", "核查人员2万人次[1]。"):
        [s] = verify.check(reply, "", counted)
        assert not s.supported and "数字" in s.why, reply


def test_an_ordinal_is_compared_by_its_value() -> None:
    ranked = [_hit("f", "蒙阴交警", "2018年，该队考评成绩居全省第9名。")]
    [s] = verify.check("该队考评成绩居全省第九名[1]。", "", ranked)
    assert s.supported, s.why
    [s] = verify.check("该队考评成绩居全省第八名[1]。", "", ranked)  # 8 is in 2018, but not as a number
    assert not s.supported, s.why


def test_no_answer_reply_is_recognised() -> None:
    assert verify.says_no_answer(verify.NO_ANSWER)
    assert not verify.says_no_answer("该队有43名党员民警[1]。")


THREE = _hit("c", "蒙阴交警推行三长负责制", "三长负责制的三长是片长、路长和点长，每人负责一段国道。")
THREE_ASKED = "三长负责制里的三长分别由谁担任？"


def test_question_restated_with_the_answer_is_kept_though_the_passage_words_it_otherwise() -> None:
    # 分别 and 担任 are the question's words, not the passage's; the answer the sentence adds is.
    [s] = verify.check("三长负责制里的三长分别由片长、路长和点长担任[1]。", THREE_ASKED, [THREE])
    assert s.supported, s.why
    # with one adverb of the model's own on top
    [s] = verify.check("三长负责制里的三长目前分别由片长、路长和点长担任[1]。", THREE_ASKED, [THREE])
    assert s.supported, s.why


def test_question_restated_with_a_wrong_answer_is_refused() -> None:
    [s] = verify.check("三长负责制里的三长分别由村长担任[1]。", THREE_ASKED, [THREE])
    assert not s.supported and "问题之外" in s.why, s.why
    [s] = verify.check("三长负责制里的三长分别由村长和组长担任[1]。", THREE_ASKED, [THREE])
    assert not s.supported


def test_question_restated_citing_a_passage_about_something_else_is_refused() -> None:
    # 果咱底村 is not in [2]'s words about 三长, but the question's words are what [2] must also hold.
    other = _hit("d", "蒙阴交警", "片长负责辖区内的交通安全宣传。")
    [s] = verify.check("三长负责制里的三长分别由片长担任[2]。", THREE_ASKED, [THREE, other])
    assert s.supported is False and "问题中的" in s.why, s.why


def test_question_words_are_not_evidence_when_the_sentence_adds_nothing() -> None:
    # Only the question's premise, which the passage does not state: refused, not excused.
    [s] = verify.check("三长负责制里的三长由上级任命担任[1]。", "三长负责制里的三长由上级任命担任吗？", [THREE])
    assert not s.supported


def test_words_beyond_the_question_are_cut_on_their_own() -> None:
    asked, added = verify._split_by_question("迪庆交警支队的挂钩扶贫点在果咱底村", "迪庆交警支队的挂钩扶贫点在哪个村？")
    assert added and all(w in "果咱底村" for w in added)  # not 点在果, a word across the two
    assert all(w in "迪庆交警支队的挂钩扶贫点在" for w in asked)


def test_name_after_a_role_word_and_a_copula() -> None:
    assert "王宏" in verify.names("党总支书记是王宏") and "是王宏" not in verify.names("党总支书记是王宏")
    [s] = verify.check("支队长是高玉林[2]。", "迪庆交警支队的支队长是谁？", HITS)
    assert s.supported, s.why
