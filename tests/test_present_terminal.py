"""Terminal text (``qa ask``): the same choices and words as the web chat, laid out as plain lines."""

from __future__ import annotations

from qa.present import html as page
from qa.present import reply, strings
from qa.present.terminal import citation_line, format_answer
from qa.types import Answer, Document, Hit, LeadSentence, Passage

TEXT = "第一句话。蒙阴大队打造“情满崮乡”党建品牌。第三句。"


def _doc(**kw) -> Document:
    return Document(doc_id="d1", path="/x/d1.txt", title="蒙阴交警", text=TEXT, content_hash="h", **kw)


def _hit(doc: Document, needle: str, ordinal: int = 0) -> Hit:
    start = doc.text.index(needle)
    return Hit(Passage(doc.doc_id, ordinal, needle, start, start + len(needle)), doc, 0.8)


def test_a_notice_is_shown_in_the_web_reply_and_the_terminal():
    answer = Answer("问", "问", True, [], [], "e5", notices=["问题超过 500 个字符，只按前 500 个字符检索。"])
    assert '<div class="qa-notice">问题超过 500 个字符' in page.render_answer(answer, [])
    assert "注意: 问题超过 500 个字符" in format_answer(answer)


def test_answer_lists_lead_with_citation_then_each_passage_and_the_model():
    doc = _doc(source="人民视点", date="2023-08-15")
    hit = _hit(doc, "蒙阴大队打造“情满崮乡”党建品牌。", ordinal=1)
    answer = Answer("党建品牌叫什么？", "党建品牌叫什么？", False, [hit], [LeadSentence(hit.passage.text, 1)], "e5")
    lines = format_answer(answer).splitlines()
    assert lines[0] == "问: 党建品牌叫什么？"
    assert lines[1] == "答: 蒙阴大队打造“情满崮乡”党建品牌。[1]"
    assert lines[3] == "[1] 蒙阴交警 · 人民视点 · 2023-08-15 · 第2段 · 字符 5–22  (score 0.800)"
    assert lines[-1] == "模型: e5"


def test_citation_metadata_is_the_web_chats():
    hit = _hit(_doc(), "第三句。")  # no source, no date: left out in both, as the web always did
    assert citation_line(2, hit) == "[2] 蒙阴交警 · 第1段 · 字符 22–26"
    assert "第1段 · 字符 22–26</div>" in page.source_card(2, hit, [])


def test_follow_up_query_line_and_abstention_use_the_shared_words():
    doc = _doc()
    answer = Answer("那蒙阴呢？", "蒙阴的党建品牌", True, [_hit(doc, "第三句。")], [], "e5")
    out = format_answer(answer)
    assert strings.QUERY.format(query="蒙阴的党建品牌") in out
    assert f"答: {strings.NO_ANSWER}{strings.RELATED}:" in out and "资料库" not in out
    html = page.render_answer(answer, [])
    assert strings.QUERY.format(query="蒙阴的党建品牌") in html and strings.NO_ANSWER in html
    nothing = format_answer(Answer("问", "问", True, [], [], "e5"))
    assert f"答: {strings.NO_ANSWER}" in nothing and strings.RELATED not in nothing


def test_a_citation_whose_text_is_not_in_the_article_is_dropped_as_on_the_web():
    doc = _doc()
    bad = Hit(Passage("d1", 0, "编造的文字", 0, 5), doc, 0.9)
    good = _hit(doc, "第三句。")
    answer = Answer("问", "问", False, [bad, good], [LeadSentence("编造的文字", 1), LeadSentence("第三句。", 2)], "e5")
    shown = reply(answer)
    assert [rank for rank, _ in shown.citations] == [2] and shown.lead == [("编造的文字", None), ("第三句。", 2)]
    out = format_answer(answer)
    assert "[1]" not in out and "[2] 蒙阴交警" in out and "答: 编造的文字 第三句。[2]" in out
    only_bad = format_answer(Answer("问", "问", False, [bad], [LeadSentence("编造的文字", 1)], "e5"))
    assert f"答: {strings.NO_ANSWER}" in only_bad and "编造" not in only_bad
