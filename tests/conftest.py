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
