"""What both index backends share (qa/index/common.py): the writer contract, BM25 weights, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qa.errors import IndexCorrupt, IndexMissing
from qa.index.common import (
    LiveReader, checked_addition, idf, join_tokens, normalised, open_live, short_error, split_tokens, term_weights,
)
from qa.types import Document, Passage


def test_an_addition_that_breaks_the_writer_contract_is_refused_before_anything_is_written():
    doc = Document(doc_id="d", path="/x/d.txt", title="标题", text="第一句。第二句。", content_hash="h")
    good = [Passage(doc_id="d", ordinal=0, text="第一句。", start=0, end=4)]
    rows = checked_addition(doc, good, [[1, 0]], [["第一"]], dim=2)
    assert rows.dtype == np.float32 and rows.shape == (1, 2)
    with pytest.raises(ValueError, match="1 passages, 2 vectors"):
        checked_addition(doc, good, [[1, 0], [0, 1]], [["第一"]], dim=2)
    with pytest.raises(ValueError, match="holds dimension 3"):
        checked_addition(doc, good, [[1, 0]], [["第一"]], dim=3)
    shifted = [Passage(doc_id="d", ordinal=0, text="第一句。", start=1, end=5)]
    with pytest.raises(ValueError, match="does not match the document text"):
        checked_addition(doc, shifted, [[1, 0]], [["第一"]], dim=2)


def test_term_weights_are_one_formula_per_passage_or_per_csr_row():
    tf = np.array([1, 2, 3], np.float32)
    one = term_weights(tf[:2].copy(), 5, 4.0)
    rows = term_weights(tf.copy(), np.array([5.0, 8.0]), 4.0, np.array([2, 1]))
    assert one.dtype == rows.dtype == np.float32
    assert np.array_equal(rows[:2], one)
    norm = 0.9 * (0.6 + 0.4 * 8 / 4.0)
    assert rows[2] == pytest.approx(3 / (3 + norm))


def test_idf_takes_the_log_it_is_given():
    assert idf(10, 2) == pytest.approx(math.log(1 + 8.5 / 2.5))
    assert idf(10, 2, math.log) == math.log(1 + 8.5 / 2.5)


def test_normalised_keeps_a_zero_vector_zero():
    rows = normalised(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    assert np.allclose(rows, [[0.6, 0.8], [0.0, 0.0]])
    assert np.allclose(normalised(np.array([0.0, 2.0], np.float32)), [0.0, 1.0])


def test_tokens_round_trip_without_the_separator():
    assert split_tokens(join_tokens(["交警", "a\x1fb"])) == ["交警", "ab"]
    assert split_tokens("") == []


def test_short_error_is_the_last_line():
    assert short_error(ValueError("first\nsecond")) == "second"
    assert short_error(ValueError("")) == "ValueError"


def test_open_live_retries_while_the_version_moves_and_not_otherwise():
    versions = iter(["1", "2", "2"])
    current = {"v": "1"}

    def live_version():
        current["v"] = next(versions, current["v"])
        return current["v"]

    def open_version(version):
        if version == "1":
            raise IndexCorrupt("gone", "")
        return type("R", (), {"version": version})()

    assert open_live("here", live_version, open_version).version == "2"
    with pytest.raises(IndexMissing, match="No index yet in here"):
        open_live("here", lambda: None, open_version)
    with pytest.raises(IndexCorrupt, match="gone"):
        open_live("here", lambda: "1", open_version)


def test_live_reader_reopens_only_when_the_version_changed():
    opened = []

    def opener(version):
        def open_reader():
            opened.append(version)
            return type("R", (), {"version": version})()
        return open_reader

    live: LiveReader = LiveReader()
    first = live.get("1", opener("1"))
    assert live.get("1", opener("1")) is first and opened == ["1"]
    assert live.get("2", opener("2")).version == "2" and opened == ["1", "2"]
