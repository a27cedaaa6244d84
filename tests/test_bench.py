"""``qa bench`` end to end on a small generated collection: every step runs, every figure is there.

A smoke run, not a measurement: the figures of a 2,000-passage collection on a
shared CI machine say nothing about speed, so only their presence and sanity
are checked (the README's figures come from ``qa bench --passages 100000``).
The tiny test model keeps it short; the bench's cache goes to a temporary folder.
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from qa.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture
def bench_env(tmp_path, seeds_dir, tiny_model_dir, monkeypatch) -> None:
    """The bench on a copy of the seeds with the tiny model; index and cache folders of its own."""
    seeds = tmp_path / "seeds"
    shutil.copytree(seeds_dir, seeds)
    for key, value in {"QA_INDEX_DIR": tmp_path / "index", "QA_SEEDS_DIR": seeds, "QA_MODEL": tiny_model_dir,
                       "QA_CACHE_DIR": tmp_path / "cache", "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, str(value))


def test_bench_runs_every_step_on_2000_passages(tmp_path, bench_env):
    result = CliRunner().invoke(cli, ["bench", "--passages", "2000", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 2000 and report["model"]["name"] == "tiny-chars"
    assert report["seeds"]["passages"] == report["encoder"]["passages"] > 0  # the seeds, once
    assert report["big"]["passages"] == 2000
    assert report["big"]["kind"] == "flat" and not report["generate"]["cached"]
    for key in ("seeds", "big"):
        figures = report[key]
        for part in ("dense", "keyword", "fusion", "total", "plain_faiss", "plain_bm25", "ask"):
            assert 0 < figures[part]["p50"] <= figures[part]["p95"], (key, part, figures[part])
    assert len(report["add"]["rounds"]) == 3 and all(r["embedded"] > 0 for r in report["add"]["rounds"])
    assert not report["cold"]["seeds"]["errors"] and not report["cold"]["big"]["errors"]
    assert report["web"].get("cited") is True, report["web"]
    assert {t["name"] for t in report["targets"]} and all(t["value"] is not None for t in report["targets"])
    assert not list((tmp_path / "index").glob("*"))  # the bench builds under its cache, never in the index folder


@pytest.mark.milvus
def test_bench_measures_milvus_beside_the_folder_index(tmp_path, bench_env):
    from milvus_server import running_server
    from qa.bench import format_report

    with running_server(tmp_path / "milvus") as server:
        result = CliRunner().invoke(cli, ["bench", "--passages", "2000", "--json", "--milvus-uri", server.uri],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    milvus = report["milvus"]
    assert milvus["big"]["passages"] == report["big"]["passages"] == 2000
    assert milvus["big"]["kind"] == "FLAT" and report["big"]["kind"] == "flat"
    for key in ("seeds", "big"):
        for part in ("dense", "keyword", "fusion", "total", "ask"):
            assert 0 < milvus[key][part]["p50"] <= milvus[key][part]["p95"], (key, part)
    assert len(milvus["add"]["rounds"]) == 3 and not milvus["cold"]["seeds"]["errors"]
    assert not milvus["cold"]["big"]["errors"]
    assert "vs Milvus" in format_report(report)
