"""Word segmentation: search-mode words, stop words and punctuation out, quiet and lazy."""

from __future__ import annotations

import subprocess
import sys

from qa import segment
from qa.segment import STOP_WORDS, highlight_spans, keywords, tokenize


def test_tokenize_search_mode_lowercase_no_stop_words_or_punctuation() -> None:
    tokens = tokenize("滨州经济技术开发区交警大队党支部有多少名党员民警？ The POLICE, 2005年!")
    assert "交警大队" in tokens and "交警" in tokens and "大队" in tokens  # search mode: parts too
    assert "police" in tokens and "The" not in tokens and "the" not in tokens
    assert "2005" in tokens
    for dropped in ("有", "多少", "？", ",", "!", " "):
        assert dropped not in tokens
    assert all(token.strip() for token in tokens)


def test_tokenize_is_the_same_for_passages_and_queries() -> None:
    passage = tokenize("海陵巡特警大队党总支现有党员54人。")
    query = tokenize("海陵巡特警大队党总支现有多少党员？")
    assert {"党员", "党总支"} <= set(passage) & set(query)
    assert "54" in passage


def test_stop_words_cover_function_and_question_words() -> None:
    for word in ("的", "了", "是", "在", "和", "什么", "多少", "哪", "怎么", "如何", "吗", "呢"):
        assert word in STOP_WORDS
    assert tokenize("的了是在和什么吗呢") == []


def test_keywords_unique_in_order_without_single_characters() -> None:
    words = keywords("蒙阴交警大队的党建品牌叫什么？蒙阴交警大队")
    assert words[0] == "蒙阴" and len(words) == len(set(words))
    assert "的" not in words and "什么" not in words and "叫" not in words
    assert "党建" in words or "党建品牌" in words


def test_highlight_spans_are_non_overlapping_and_prefer_longer_words() -> None:
    text = "交警大队党总支,交警在路口。Police here."
    spans = highlight_spans(text, ["交警", "交警大队", "police", ""])
    assert spans == [(0, 4), (8, 10), (14, 20)]
    assert [text[s:e] for s, e in spans] == ["交警大队", "交警", "Police"]
    assert highlight_spans(text, []) == []


def test_import_is_lazy_and_loading_is_quiet() -> None:
    code = (
        "import sys, qa.load, qa.clean, qa.chunk, qa.text, qa.segment\n"
        "assert 'jieba' not in sys.modules, 'jieba imported at module level'\n"
        "print(qa.segment.tokenize('交警大队')); print(qa.segment.tokenize('党员'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "交警" in result.stdout


_SEGMENT = """
import json, sys
from qa import segment
segment.prepare(sys.argv[1] if sys.argv[1] != "-" else None)
sample = "滨州经济技术开发区交警大队党支部有多少名党员民警？海陵巡特警大队党总支现有党员54人。"
print(json.dumps([segment.tokenize(sample), segment.keywords(sample)], ensure_ascii=False))
"""


def _segment(cache: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SEGMENT, cache], capture_output=True, text=True, timeout=120)


def test_dictionary_cache_segments_exactly_like_jieba_and_survives_damage(tmp_path) -> None:
    plain = _segment("-")
    first = _segment(str(tmp_path))  # jieba's own start-up, then the JSON copy is written
    files = list((tmp_path / "jieba").glob("dict-*.json"))
    assert len(files) == 1 and files[0].stat().st_size > 1_000_000
    cached = _segment(str(tmp_path))  # read from the JSON copy
    assert plain.returncode == first.returncode == cached.returncode == 0, plain.stderr + cached.stderr
    assert plain.stdout == first.stdout == cached.stdout and plain.stderr == cached.stderr == ""

    files[0].write_text('{"total": 10, "words": "滨州\\n滨", "counts": [5, 0]}', encoding="utf-8")
    assert _segment(str(tmp_path)).stdout != plain.stdout  # the copy, not jieba's own file, was read

    files[0].write_text('{"total": 1, "words": "a", "counts": [1, 2', encoding="utf-8")  # cut short
    damaged = _segment(str(tmp_path))
    assert damaged.returncode == 0 and damaged.stdout == plain.stdout and damaged.stderr == ""
    assert files[0].stat().st_size > 1_000_000  # rewritten whole

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go", encoding="utf-8")
    unwritable = _segment(str(blocked / "cache"))  # nothing can be written: only slower
    assert unwritable.returncode == 0 and unwritable.stdout == plain.stdout and unwritable.stderr == ""


def test_a_question_cut_once_gives_what_each_jieba_call_gives(eval_rows, seeds_dir) -> None:
    import jieba

    texts = [row["question"] for row in eval_rows]
    for path in sorted(seeds_dir.glob("*.txt")):
        texts += path.read_text(encoding="utf-8").splitlines()
    texts += ["", " \t", "a b\r\nc", "ABC123abc 你好 x-y_z.1%", "🙂？", "萱侬律什么时候开放？", "３５M线",
              "王法慧是谁的女儿？"]
    unknown = 0
    for text in texts:
        cut = segment.cut(text)
        assert list(cut.words) == list(jieba.cut(text)), text
        assert list(cut.plain) == list(jieba.cut(text, HMM=False)), text
        assert list(cut.tokens) == tokenize(text), text
        assert list(cut.keywords) == keywords(text), text
        unknown += cut.words != cut.plain
    assert unknown > 0  # the HMM found words the dictionary does not know: both paths were compared
