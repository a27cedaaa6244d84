"""The cut-down question tokenizer gives exactly the ids of the model's full tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qa import chunk, clean, convert, load
from qa.config import Settings
from qa.pipeline import index_text
from qa.question_tokenizer import QuestionTokenizer, prepare

pytestmark = pytest.mark.slow  # converts the bundled model when it is not cached yet

EDGES = [
    "长" * 3000,  # truncated at the model's length
    "<mask>问题<s>abc</s>  多个   空格<unk><pad>",  # special tokens in the text are split out first
    "ＡＢＣ１２３，全角字母", "价格～100元", "第一行\n第二行\t制表", "控制\x07字符\x1b删除", "㍻ ① ㈱ ﬁ",
    "零宽\u200b空格与\u00a0不换行", "😀🤖 emoji 与 \U0010ffff\ue000 私用区", "", " ", "Hello World, mixed 中文 text!",
]


@pytest.fixture(scope="module")
def tokenizer_json() -> Path:
    return convert.install_bundled(Settings.load().cache_dir) / "tokenizer.json"


def _passages(folder: Path) -> list[str]:
    """The passages a build encodes from the folder's files (default chunking, with the document's title)."""
    docs = [clean.to_document(load.read(path)) for path in sorted(folder.iterdir()) if path.is_file()]
    return [index_text(doc, passage) for doc in docs for passage in chunk.chunk_document(doc)]


def test_same_ids_as_the_full_tokenizer(tokenizer_json, tmp_path, eval_rows, eval_dir, seeds_dir):
    """Per text, in groups of any size (the pieces of the whole group in one tokenizer) and the full tokenizer
    give the same ids, on questions, passages as a build makes them, passages cut anywhere and edge cases."""
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(tokenizer_json))
    full.enable_truncation(max_length=512)
    full.no_padding()
    cut = QuestionTokenizer(tokenizer_json, tmp_path, 512)
    cmrc = eval_dir / "cmrc2018-trial" / "questions.jsonl"
    questions = [r["question"] for r in eval_rows] + EDGES
    questions += [json.loads(line)["question"] for line in cmrc.read_text(encoding="utf-8").splitlines()[:300]]
    article = "\n".join(p.read_text(encoding="utf-8") for p in sorted(seeds_dir.iterdir()) if p.is_file())
    rng = random.Random(7)
    cuts = []
    for _ in range(200):  # passages of the seeds, cut anywhere
        start = rng.randrange(len(article))
        cuts.append(article[start : start + rng.randrange(1, 300)])
    passages = _passages(seeds_dir) + _passages(eval_dir / "cmrc2018-trial" / "docs")
    assert len(passages) > 500
    texts = ["query: " + t for t in questions] + questions + ["passage: " + t for t in passages + cuts] + EDGES
    expected = [full.encode(t).ids for t in texts]
    alone = [cut.encode(t) for t in texts]
    assert [t for t, a, e in zip(texts, alone, expected, strict=True) if a != e] == []
    for size in (16, 64, len(texts)):
        grouped = [ids for s in range(0, len(texts), size) for ids in cut.encode_batch(texts[s : s + size])]
        assert [t for t, g, e in zip(texts, grouped, expected, strict=True) if g != e] == [], size
    longest_first = sorted(texts, key=lambda t: (-len(t), t))  # the order a build sends passages in
    grouped = [ids for s in range(0, len(texts), 64) for ids in cut.encode_batch(longest_first[s : s + 64])]
    assert grouped == [full.encode(t).ids for t in longest_first]
    assert cut.encode_batch([]) == [] and cut.encode_batch(["交警", "交警"]) == [full.encode("交警").ids] * 2


def test_pieces_are_stored_once_and_reused(tokenizer_json, tmp_path):
    first = prepare(tokenizer_json, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert prepare(tokenizer_json, tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert QuestionTokenizer(tokenizer_json, tmp_path, 512).encode("query: 交警") == \
        QuestionTokenizer(tokenizer_json, tmp_path, 512).encode("query: 交警")
