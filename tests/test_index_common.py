"""What both index backends share (qa/index/common.py)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.index.common import checked_addition
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

