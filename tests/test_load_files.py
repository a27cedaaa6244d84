"""Which files a build reads, and what reading one may cost (issue 22, items 2, 3, 6 and 7).

Every path given or found has exactly one outcome; a file that is not a
regular file is never opened; an HTML page whose shape would make the
parser's tree huge is refused before the tree exists; a rebuild does not
read a file whose stat says it has not changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qa.load import read
from qa.pipeline import load_collection

ARTICLE = "交警大队开展安全宣传\n\n交警大队党总支现有党员54人，其中民警47人。该党总支每周一集中学习。\n"


def _no_soup(monkeypatch) -> list[int]:
    """Make BeautifulSoup fail the test if it is ever asked to parse; count the calls."""
    import bs4

    calls: list[int] = []

    def refuse(*args, **kwargs):
        calls.append(1)
        raise AssertionError("BeautifulSoup was called for a page that should be refused first")

    monkeypatch.setattr(bs4, "BeautifulSoup", refuse)
    return calls


@pytest.mark.parametrize(
    "name, page, why",
    [
        # the review's page, scaled down from 1.6 M elements: over the element limit long before the end
        ("tiny-elements.html", b"<html><body><p>" + "<b>字</b>".encode() * 400_000, "HTML elements"),
        ("nested-divs.html", b"<html><body>" + b"<div>" * 300_000 + "深处".encode() + b"</div>" * 300_000, "nested"),
    ],
)
def test_pathological_html_is_refused_before_any_tree_is_built(tmp_path: Path, monkeypatch, name, page, why) -> None:
    """Before: the whole BeautifulSoup tree was built first (146 s and 4 GB for 19 MB), depth checked after."""
    path = tmp_path / name
    path.write_bytes(page)
    calls = _no_soup(monkeypatch)
    started = time.perf_counter()
    loaded = load_collection([path])
    elapsed = time.perf_counter() - started
    assert not loaded.documents and not calls
    assert [s.path for s in loaded.skipped] == [str(path)] and why in loaded.skipped[0].reason
    assert "\n" not in loaded.skipped[0].reason
    assert elapsed < 10, elapsed  # ~0.5 s here; the tree alone took ~80 s for this page


def test_real_pages_pass_the_shape_check(tmp_path: Path) -> None:
    """A long page of dense table cells (``<td>1</td>`` is as dense as the hostile ``<b>字</b>``) loads."""
    rows = "".join(f"<tr><td>{i}</td><td><a href='/x/{i}'>交警大队记录{i}</a></td></tr>" for i in range(3000))
    page = f"<html><head><title>记录</title></head><body><article><p>{ARTICLE}</p><table>{rows}</table></article>"
    path = tmp_path / "long.html"
    path.write_text(page + "</body></html>", encoding="utf-8")
    assert "交警大队记录2999" in read(path).text
