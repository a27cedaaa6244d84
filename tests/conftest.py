"""Shared test fixtures.

The seeds and the evaluation sets (``eval/``) ship in the repo, so a fresh
clone with nothing beside it runs every test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
EVAL = ROOT / "eval"


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture
def corpus(tmp_path, seeds_dir) -> Path:
    """A writable copy of the seeds, for tests that change, add or delete articles."""
    folder = tmp_path / "articles"
    shutil.copytree(seeds_dir, folder)
    return folder


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    return EVAL


@pytest.fixture(scope="session")
def eval_rows(eval_dir: Path) -> list[dict]:
    path = eval_dir / "questions.jsonl"
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


@pytest.fixture(scope="module")
def tiny_encoder(tiny_model_dir):
    """The tiny model loaded once per test module, for tests that hand an encoder to ``Bot`` or ``Bases``."""
    from qa.config import Settings
    from qa.embed import load_encoder

    return load_encoder(Settings.load(model=str(tiny_model_dir)))


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    """A real ``milvus-lite server`` on a free 127.0.0.1 port (tests/milvus_server.py), one per test module;
    tests share it through collection names of their own."""
    from milvus_server import running_server

    with running_server(tmp_path_factory.mktemp("milvus") / "data") as started:
        yield started
