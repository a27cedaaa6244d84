"""The chat's HTML: escaping, keyword marks on raw offsets, citations, abstention."""

from __future__ import annotations

import html
import re

from qa.present import html as page
from qa.present import is_valid
from qa.types import Answer, CheckedSentence, Document, Generated, Hit, LeadSentence, Passage

XSS = '<script>window.__pwned=1</script>蒙阴大队<img src=x onerror="window.__pwned=2">党建品牌 & "情满崮乡"'


def make_doc(text: str, title: str = "标题", doc_id: str = "d1", **kw) -> Document:
    return Document(doc_id=doc_id, path=f"/tmp/{doc_id}.txt", title=title, text=text, content_hash="h", **kw)


def hit_for(doc: Document, needle: str, ordinal: int = 0, score: float = 0.8) -> Hit:
    start = doc.text.index(needle)
    passage = Passage(doc.doc_id, ordinal, needle, start, start + len(needle))
    return Hit(passage=passage, document=doc, score=score)


def tags(fragment: str) -> set[str]:
    return {t.lower() for t in re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", fragment)}


def test_mark_spans_escapes_every_slice_and_marks_raw_offsets():
    text = "a<b>c&d"
    out = page.mark_spans(text, [(1, 4)])
    assert out == 'a<mark class="qa-kw">&lt;b&gt;</mark>c&amp;d'


def test_mark_spans_clips_and_merges_bad_spans():
    out = page.mark_spans("abcdef", [(4, 99), (-3, 2), (1, 3)])
    assert out == '<mark class="qa-kw">ab</mark><mark class="qa-kw">c</mark>d<mark class="qa-kw">ef</mark>'
    assert html.unescape(re.sub(r"<[^>]+>", "", out)) == "abcdef"


def test_highlight_never_creates_markup_from_document_text():
    out = page.highlight(XSS, ["党建品牌", "script", "onerror"])
    assert tags(out) <= {"mark"}
    assert "<script" not in out and "<img" not in out
    assert '<mark class="qa-kw">党建品牌</mark>' in out
    # the text a reader sees is exactly the document text
    assert html.unescape(re.sub(r"<[^>]+>", "", out)) == XSS


def test_reply_has_lead_with_citation_then_sources():
    doc = make_doc(
        "第一句话。蒙阴大队打造“情满崮乡”党建品牌。第三句。", title="蒙阴交警", source="人民视点", date="2023-08-15"
    )
    hit = hit_for(doc, "蒙阴大队打造“情满崮乡”党建品牌。", ordinal=1)
    answer = Answer("蒙阴交警大队的党建品牌叫什么？", "蒙阴交警大队的党建品牌叫什么？", False, [hit],
                    [LeadSentence("蒙阴大队打造“情满崮乡”党建品牌。", 1)], "e5")
    out = page.render_answer(answer, ["党建品牌"])
    assert "\n" not in out  # one HTML block: no Markdown rule can apply
    lead = out[out.index('class="qa-lead"'):out.index("来源：")]
    assert "情满崮乡" in lead and ">[1]</a>" in lead
    href = re.search(r'href="([^"]+)"', lead).group(1)
    assert page.parse_cite(html.unescape(href)) == ("d1", hit.passage.start, hit.passage.end)
    for part in ("蒙阴交警", "人民视点", "2023-08-15", "第2段", f"字符 {hit.passage.start}–{hit.passage.end}"):
        assert part in out
    assert '<mark class="qa-kw">党建品牌</mark>' in out
    assert "qa-query" not in out  # the query is the question: nothing to show


def test_reply_shows_interpreted_query_for_follow_up():
    doc = make_doc("海陵巡特警大队有党员32名。")
    answer = Answer("那海陵巡特警大队呢？", "海陵巡特警大队有多少党员", False, [hit_for(doc, doc.text)], [], "e5")
    out = page.render_answer(answer, [])
    assert "按“海陵巡特警大队有多少党员”检索" in out
    assert ">[1]</a>" in out  # no lead sentence: the best passage is shown with its citation


def test_abstention_says_no_answer_and_offers_possibly_related():
    doc = make_doc("完全无关的一段文字。")
    answer = Answer("火星上有几座城市？", "火星上有几座城市？", True, [hit_for(doc, doc.text)], [], "e5")
    out = page.render_answer(answer, [])
    assert "没有找到" in out and "可能相关" in out and "来源：" not in out
    empty = page.render_answer(Answer("问", "问", True, [], [], "e5"), [])
    assert "没有找到" in empty and "可能相关" not in empty


def test_citation_whose_text_is_not_in_the_article_is_dropped():
    doc = make_doc("真实的文字在这里。")
    bad = Hit(Passage("d1", 0, "编造的文字", 0, 5), doc, 0.9)
    good = hit_for(doc, "真实的文字")
    assert not is_valid(bad) and is_valid(good)
    out = page.render_answer(Answer("问", "问", False, [bad, good], [LeadSentence("真实的文字", 2)], "e5"), [])
    assert "编造" not in out and ">[2]</a>" in out and ">[1]</a>" not in out


def test_article_marks_cited_span_with_anchor_and_escapes_everything():
    doc = make_doc(XSS + "\n后文。", title="<b>标题</b>", url="http://x/?a=<i>")
    start = doc.text.index("蒙阴大队")
    end = start + len("蒙阴大队")
    out = page.render_article(doc, start, end, ["党建品牌", "蒙阴"])
    assert tags(out) <= {"div", "mark", "br", "button"} and out.count("<button") == 1  # the close button (a phone)
    assert '<mark id="qa-cited" class="qa-cited"><mark class="qa-kw">蒙阴</mark>大队</mark>' in out
    assert out.count('id="qa-cited"') == 1
    assert "&lt;b&gt;标题&lt;/b&gt;" in out and "&lt;script&gt;" in out
    body = out[out.index('class="qa-art-body">') + len('class="qa-art-body">'):-len("</div></div>")]
    assert html.unescape(re.sub(r"<[^>]+>", "", body.replace("<br>", "\n"))) == doc.text


def test_cite_href_round_trips_odd_doc_ids():
    href = page.cite_href("a:b/c 中", 3, 9)
    assert href.startswith(page.CITE_PREFIX) and '"' not in href and "<" not in href
    assert page.parse_cite(href) == ("a:b/c 中", 3, 9)
    for bad in ("", "#qa-cite:x:1", "#qa-cite:x:5:2", "#qa-cite:x:a:b", "#qa-cite::1:2"):
        assert page.parse_cite(bad) is None


def test_documents_table_escapes_titles():
    out = page.render_documents([{"doc_id": "abc", "title": "<img src=x onerror=alert(1)>", "passages": 3}])
    assert "<img" not in out and "&lt;img" in out and ">3<" in out
    assert "空" in page.render_documents([])


def test_history_is_the_earlier_user_questions_unescaped():
    messages = [
        {"role": "user", "content": html.escape("a<b & c")},
        {"role": "assistant", "content": "<div>x</div>"},
        {"role": "user", "content": [{"type": "text", "text": "第二问"}]},
    ]
    assert page.earlier_questions(messages) == ["a<b & c", "第二问"]
    assert page.earlier_questions(messages, turns=1) == ["第二问"]


def test_example_questions_come_from_the_collection():
    titles = [
        "党建工作在路上 人民群众放心上 — 记滨州经济技术开发区交警大队党支部",
        "",
        "山东临沂蒙阴交警大队:多彩党建文化",
        "常德公安交警直属一大队开展文明单位创建工作成效显著",
        "第四篇",
    ]
    assert page.example_questions(titles) == [
        "介绍一下滨州经济技术开发区交警大队党支部",
        "介绍一下山东临沂蒙阴交警大队",
        "介绍一下常德公安交警直属一大队开展文明单位创建工作成效显著",
    ]


# -- the written answer (issue 18): checked sentences with [n] links, the stream, the fallback ------------------

def _written_answer(generated):
    doc = make_doc("第一句话。蒙阴大队打造“情满崮乡”党建品牌。第三句。<b>x</b>", title="蒙阴交警")
    hits = [hit_for(doc, "蒙阴大队打造“情满崮乡”党建品牌。", ordinal=1), hit_for(doc, "第三句。<b>x</b>", ordinal=2)]
    lead = [LeadSentence("蒙阴大队打造“情满崮乡”党建品牌。", 1)]
    return Answer("蒙阴交警大队的党建品牌叫什么？", "蒙阴交警大队的党建品牌叫什么？", False, hits, lead, "e5",
                  generated=generated)


def test_written_answer_shows_kept_sentences_with_citation_links_then_the_passages():
    sentences = [CheckedSentence("蒙阴大队的党建品牌是“情满崮乡”<i>。", [1, 2], True, "所引段落能证实"),
                 CheckedSentence("该品牌创立于1990年。", [1], False, "数字 1990 不在所引段落中")]
    answer = _written_answer(Generated("qwen", "…", sentences))
    out = page.render_answer(answer, ["党建品牌"])
    assert "\n" not in out and "<i>" not in out and "&lt;i&gt;" in out
    lead = out[out.index('class="qa-lead qa-written"'):out.index("来源：")]
    assert "情满崮乡" in lead and "1990" not in out  # the refused sentence is not shown
    links = re.findall(r'href="([^"]+)"[^>]*>\[(\d)\]</a>', lead)
    assert [n for _, n in links] == ["1", "2"]
    for (href, _n), hit in zip(links, answer.hits, strict=True):  # [n] opens citations[n-1], as today's links do
        assert page.parse_cite(html.unescape(href)) == ("d1", hit.passage.start, hit.passage.end)
    assert "qwen" in lead and "另有 1 句" in lead
    assert out.count('class="qa-src"') == 2 and "qa-notice" not in out


def test_a_fallback_shows_the_extractive_lead_with_one_notice():
    answer = _written_answer(Generated("qwen", "", [], "模型在 30 秒内没有答完"))
    out = page.render_answer(answer, [])
    assert out.count('class="qa-notice"') == 1 and "显示的是摘录的答案：模型在 30 秒内没有答完" in out
    lead = out[out.index('class="qa-lead"'):out.index("来源：")]
    assert "情满崮乡" in lead and ">[1]</a>" in lead and "qa-written" not in out
    assert out.index("qa-notice") < out.index("qa-lead")


def test_the_stream_is_escaped_text_under_a_writing_line_then_the_passages():
    answer = _written_answer(None)
    out = page.render_writing(answer, "品牌是<script>x</script>[1]", "qwen", ["品牌"])
    assert "<script" not in out and "&lt;script&gt;" in out and "qwen 正在撰写" in out
    assert "qa-writing" in out and out.count('class="qa-src"') == 2 and "\n" not in out
    abstained = Answer("火星？", "火星？", True, answer.hits, [], "e5")  # no answer: no writing either
    assert page.render_writing(abstained, "x", "qwen", []) == page.render_answer(abstained, [])
