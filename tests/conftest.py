"""Shared test fixtures.

The seeds ship in the repo; the evaluation set lives in ``../shared`` beside
the checkout (override with ``QA_SHARED_DIR``). Tests that need it fail, not
skip, when it is missing: a skipped test would hide a missing check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SHARED = Path(os.environ.get("QA_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"{SHARED} is missing: put ../shared beside the checkout or set QA_SHARED_DIR"
    return SHARED


@pytest.fixture(scope="session")
def eval_rows(shared_dir: Path) -> list[dict]:
    path = shared_dir / "eval" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A small real sentence-transformers model: mean of per-character vectors.

    Pipeline mechanics (incremental builds, removal, locking, JSON shapes) do
    not depend on retrieval quality, and this model loads and encodes in
    milliseconds through the same resolution code as any local model. Quality
    is tested with the bundled multilingual-e5-small.
    """
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    chars = sorted({c for f in SEEDS.iterdir() for c in f.read_text(encoding="utf-8") if not c.isspace()})
    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    weights = np.random.default_rng(7).normal(size=(len(vocab), 32)).astype(np.float32)
    path = tmp_path_factory.mktemp("models") / "tiny-chars"
    SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_weights=weights)], device="cpu").save(str(path))
    return path
