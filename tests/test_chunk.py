"""Chunking: whole sentences, exact offsets, headings kept with what they introduce."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from qa.chunk import chunk_document, split_sentences
from qa.clean import make_doc_id
from qa.pipeline import load_documents
from qa.types import Document

from test_clean import FURNITURE  # the furniture issue 3 lists for the seeds (tests/ is on sys.path)


@pytest.fixture(scope="module")
def seed_docs(seeds_dir: Path) -> dict[str, Document]:
    docs, _ = load_documents([seeds_dir])
    return {Path(doc.path).name: doc for doc in docs}


def _doc(text: str) -> Document:
    return Document(doc_id=make_doc_id("x.txt"), path="/x.txt", title="t", text=text, content_hash="h")


def _sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("第一句。第二句!第三句?第四句;第五句", ["第一句。", "第二句!", "第三句?", "第四句;", "第五句"]),
        ("他说:“好的。”然后走了。", ["他说:“好的。”", "然后走了。"]),
        ("「真的嗎？」她問。", ["「真的嗎？」", "她問。"]),
        ("指标下降1.26%、19.23%。访问www.example.com了解。", ["指标下降1.26%、19.23%。", "访问www.example.com了解。"]),
        ("守护城市的安宁……他们肩负使命。", ["守护城市的安宁……", "他们肩负使命。"]),
        ("悄悄地离开了...所有人都哭了。", ["悄悄地离开了...", "所有人都哭了。"]),
        ("谢谢…!再见。", ["谢谢…!", "再见。"]),
        (
            "It costs 3.5 dollars. See https://a.cn/x?id=3 now! Ok",
            ["It costs 3.5 dollars.", "See https://a.cn/x?id=3 now!", "Ok"],
        ),
        ("在“走好安全。你我他”观摩会上发言。", ["在“走好安全。你我他”观摩会上发言。"]),
        ("标题\n\n正文一句。\n  第二段。  ", ["标题", "正文一句。", "第二段。"]),
        ("(通讯员:刘小满)", ["(通讯员:刘小满)"]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def test_sentence_spans_cover_all_text_in_order() -> None:
    text = "一。二！\n\n三?“四。”五……六"
    spans = split_sentences(text)
    assert spans == sorted(spans)
    assert "".join(text[s:e] for s, e in spans) == text.replace("\n", "")


def test_every_seed_passage_has_exact_offsets_and_whole_sentences(seed_docs) -> None:
    for name, doc in seed_docs.items():
        passages = chunk_document(doc)
        assert passages, name
        sentence_starts = {s for s, _ in split_sentences(doc.text)}
        sentence_ends = {e for _, e in split_sentences(doc.text)}
        for n, p in enumerate(passages):
            assert doc.text[p.start : p.end] == p.text, (name, n)
            assert (p.doc_id, p.ordinal) == (doc.doc_id, n)
            assert p.start in sentence_starts and p.end in sentence_ends, (name, n, p.text[:20])
            assert len(p.text) <= 600
        covered = set()
        for p in passages:
            covered.update(range(p.start, p.end))
        assert all(i in covered for s, e in split_sentences(doc.text) for i in range(s, e)), name


def test_no_seed_passage_carries_furniture(seed_docs) -> None:
    for name, doc in seed_docs.items():
        for p in chunk_document(doc):
            for pattern in FURNITURE:
                assert not re.search(pattern, p.text), (name, p.ordinal, pattern)


def test_every_eval_answer_is_whole_in_a_passage_of_its_document(seed_docs, eval_rows) -> None:
    passages = {name: chunk_document(doc) for name, doc in seed_docs.items()}
    rows = [row for row in eval_rows if row["doc"]]
    assert len(rows) >= 50
    missing = [row["id"] for row in rows if not any(row["answer"] in p.text for p in passages[row["doc"]])]
    assert missing == []


def test_headings_start_the_passages_they_introduce(seed_docs) -> None:
    passages = chunk_document(seed_docs["004_ebcf79fdcfa0e81b.txt"])
    headed = [p for p in passages if p.heading == "凝心聚力 学习教育贯穿始终"]  # whitespace normalised
    assert headed and " ".join(headed[0].text.split("\n", 1)[0].split()) == headed[0].heading
    for doc in seed_docs.values():
        passages = chunk_document(doc)
        headings = {p.heading for p in passages if p.heading}
        for p in passages:
            last_line = " ".join(p.text.rsplit("\n", 1)[-1].split())
            assert not any(h.endswith(last_line) for h in headings), f"passage ends with a heading: {last_line}"


def test_packing_respects_size_and_overlaps_whole_sentences() -> None:
    sentence = "这是一个用于测试分块的句子,长度大约二十五个字。"
    doc = _doc("".join(sentence.replace("一个", f"第{i}个") for i in range(40)))
    passages = chunk_document(doc, size=100, max_size=150, overlap=1)
    assert len(passages) > 5
    for a, b in itertools.pairwise(passages):
        assert len(a.text) <= 150
        last = _sentences(a.text)[-1]
        assert b.text.startswith(last), "the next passage repeats the last whole sentence"
    no_overlap = chunk_document(doc, size=100, max_size=150, overlap=0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(no_overlap))
    assert "".join(p.text for p in no_overlap) == doc.text


def test_only_a_sentence_longer_than_max_is_cut() -> None:
    long_sentence = ",".join(f"第{i}项工作已经完成" for i in range(60)) + "。"
    doc = _doc("开头一句。\n" + long_sentence + "\n结尾一句。")
    passages = chunk_document(doc, size=100, max_size=150)
    for p in passages:
        assert doc.text[p.start : p.end] == p.text and len(p.text) <= 150
    assert any(p.text == "开头一句。" for p in passages)
    middle = [p for p in passages if "项工作" in p.text]
    assert len(middle) >= 2 and all(p.text.endswith((",", "。")) for p in middle)
    assert "".join(p.text for p in middle) == long_sentence


def test_heading_sections_and_trailing_short_line() -> None:
    text = "第一部分\n\n内容一。内容二。\n\n第二部分\n小节标题\n\n内容三。\n\n(通讯员:张三)"
    passages = chunk_document(_doc(text), size=300)
    assert [p.heading for p in passages] == ["第一部分", "第二部分 小节标题"]
    assert passages[0].text == "第一部分\n\n内容一。内容二。"
    assert passages[1].text.startswith("第二部分\n小节标题") and passages[1].text.endswith("(通讯员:张三)")


def test_empty_document_has_no_passages() -> None:
    assert chunk_document(_doc("")) == []
