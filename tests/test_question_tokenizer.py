"""The cut-down question tokenizer gives exactly the ids of the model's full tokenizer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qa import convert
from qa.config import Settings
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


def test_same_ids_as_the_full_tokenizer(tokenizer_json, tmp_path, eval_rows, eval_dir, seeds_dir):
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(tokenizer_json))
    full.enable_truncation(max_length=512)
    full.no_padding()
    cut = QuestionTokenizer(tokenizer_json, tmp_path, 512)
    cmrc = eval_dir / "cmrc2018-trial" / "questions.jsonl"
    texts = [r["question"] for r in eval_rows] + EDGES
    texts += [json.loads(line)["question"] for line in cmrc.read_text(encoding="utf-8").splitlines()[:300]]
    article = "\n".join(p.read_text(encoding="utf-8") for p in sorted(seeds_dir.iterdir()) if p.is_file())
    rng = random.Random(7)
    for _ in range(200):  # passages of the seeds, cut anywhere
        start = rng.randrange(len(article))
        texts.append(article[start : start + rng.randrange(1, 300)])
    wrong = [t for t in texts for q in ("query: " + t, t) if cut.encode(q) != full.encode(q).ids]
    assert wrong == []


def test_pieces_are_stored_once_and_reused(tokenizer_json, tmp_path):
    first = prepare(tokenizer_json, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert prepare(tokenizer_json, tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert QuestionTokenizer(tokenizer_json, tmp_path, 512).encode("query: 交警") == \
        QuestionTokenizer(tokenizer_json, tmp_path, 512).encode("query: 交警")
