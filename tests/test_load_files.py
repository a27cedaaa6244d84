"""Which files a build reads, and what reading one may cost (issue 22, items 2, 3, 6 and 7).

Every path given or found has exactly one outcome; a file that is not a
regular file is never opened; an HTML page over the element or nesting
limits is refused at the first element past them, and an accepted one
costs a small multiple of its size; a rebuild does not read a file whose
stat says it has not changed.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

import qa.load
from qa.load import discover, read
from qa.pipeline import load_collection

ARTICLE = "交警大队开展安全宣传\n\n交警大队党总支现有党员54人，其中民警47人。该党总支每周一集中学习。\n"


def _pieces_read(monkeypatch) -> list[int]:
    """Count the pieces of decoded page that lxml's parser asks the reader for."""
    calls: list[int] = []
    read_piece = qa.load._Pieces.read

    def counted(self, size: int = -1) -> bytes:
        calls.append(1)
        return read_piece(self, size)

    monkeypatch.setattr(qa.load._Pieces, "read", counted)
    return calls


@pytest.mark.parametrize(
    "name, page, refused_at, why",
    [
        # the review's page: 1.6 M tiny elements, 16 MB, once minutes and gigabytes for BeautifulSoup's tree
        (
            "tiny-elements.html",
            b"<html><body><p>" + "<b>字</b>".encode() * 1_600_000,
            15 + 10 * qa.load.HTML_MAX_ELEMENTS,  # the byte where the element past the limit starts
            "HTML elements",
        ),
        (
            "nested-divs.html",
            b"<html><body>" + b"<div>" * 300_000 + "深处".encode() + b"</div>" * 300_000,
            12 + 5 * qa.load.HTML_MAX_DEPTH,
            "nested",
        ),
    ],
)
def test_pathological_html_is_refused_early(tmp_path: Path, monkeypatch, name, page, refused_at, why) -> None:
    """Refused at the first element over a limit: lxml reads no further into the page, and reads it once."""
    path = tmp_path / name
    path.write_bytes(page)
    calls = _pieces_read(monkeypatch)
    loaded = load_collection([path], max_file_mb=20)
    assert not loaded.documents
    assert [s.path for s in loaded.skipped] == [str(path)] and why in loaded.skipped[0].reason
    assert "\n" not in loaded.skipped[0].reason
    assert refused_at < len(page) / 3
    assert len(calls) <= refused_at // 2**16 + 3, len(calls)  # 64 KiB pieces up to it, one read ahead, the end


def test_a_large_accepted_page_costs_a_small_multiple_of_its_size(tmp_path: Path) -> None:
    """Python's peak allocations while reading a page just under the element limit stay under 5x its size.

    The tree BeautifulSoup built took ~1.4 kB per element: ~140 MB, over 100x,
    for this page. (The process's whole peak, lxml included, is measured by
    benchmarks/html_memory.py.)
    """
    import tracemalloc

    rows = "".join(f"<tr><td>{i}</td><td>交警大队记录{i}</td></tr>" for i in range(33_000))
    path = tmp_path / "table.html"
    path.write_text(f"<html><body><article><p>{ARTICLE}</p><table>{rows}</table></article></body></html>", "utf-8")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        raw = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "交警大队记录32999" in raw.text
    assert peak < 5 * size, (peak, size)


def test_real_pages_pass_the_shape_check(tmp_path: Path) -> None:
    """A long page of dense table cells (``<td>1</td>`` is as dense as the hostile ``<b>字</b>``) loads."""
    rows = "".join(f"<tr><td>{i}</td><td><a href='/x/{i}'>交警大队记录{i}</a></td></tr>" for i in range(3000))
    page = f"<html><head><title>记录</title></head><body><article><p>{ARTICLE}</p><table>{rows}</table></article>"
    path = tmp_path / "long.html"
    path.write_text(page + "</body></html>", encoding="utf-8")
    assert "交警大队记录2999" in read(path).text


def test_a_link_given_as_a_file_argument_follows_the_folder_rule(tmp_path: Path) -> None:
    """Before: ``qa build --add inbox/*.txt`` indexed what a name in inbox pointed to elsewhere, silently."""
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(ARTICLE, encoding="utf-8")
    (inbox / "own.txt").write_text(ARTICLE, encoding="utf-8")
    (inbox / "leak.txt").symlink_to(outside / "secret.txt")
    (inbox / "same.txt").symlink_to(inbox / "own.txt")  # inside its folder: read as its target
    (inbox / "gone.txt").symlink_to(outside / "missing.txt")
    given = sorted(inbox.iterdir())  # what the shell's inbox/*.txt expands to

    files, skipped = discover(given)
    assert files == [(inbox / "own.txt").resolve()]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"leak.txt", "gone.txt"}
    assert "outside its folder" in reasons["leak.txt"] and "--follow-links" in reasons["leak.txt"]
    assert "does not exist" in reasons["gone.txt"]

    files, skipped = discover(given, follow_links=True)  # followed: indexed under the link's own path
    assert files == sorted([(inbox / "own.txt").resolve(), inbox.resolve() / "leak.txt"])
    assert [Path(s.path).name for s in skipped] == ["gone.txt"]


def _specials(folder: Path) -> list[Path]:
    fifo = folder / "pipe.txt"
    os.mkfifo(fifo)
    sock = folder / "sock.md"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock))
    server.close()
    return [fifo, sock]


def test_special_files_get_one_skip_line_each_and_are_never_opened(tmp_path: Path, monkeypatch) -> None:
    """Before: a FIFO in a folder appeared in no line, and one given directly was "no such file or folder"."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text(ARTICLE, encoding="utf-8")
    fifo, sock = _specials(folder)
    null = Path(os.devnull)
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))

    loaded = load_collection([folder, fifo, null])
    assert [d.path for d in loaded.documents] == [str((folder / "good.txt").resolve())]
    outcomes = [(Path(s.path).name, s.reason) for s in loaded.skipped]
    assert sorted(name for name, _ in outcomes) == sorted(["pipe.txt", "sock.md", "pipe.txt", "null"])
    for name, reason in outcomes:
        assert "not a regular file" in reason and "no such file" not in reason, (name, reason)
    assert "FIFO" in dict(outcomes)["pipe.txt"] and "socket" in dict(outcomes)["sock.md"]
    assert opened == [str((folder / "good.txt").resolve())]  # the special files were judged by lstat alone


def test_a_fifo_that_replaces_a_listed_file_does_not_block_the_read(tmp_path: Path) -> None:
    """Between discovery and reading a file can become a FIFO: opening it must not wait for a writer."""
    fifo = tmp_path / "late.txt"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            read(fifo)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): let it go by opening the other end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("reading a FIFO blocked until a writer came")
    assert isinstance(outcome[0], qa.load.LoadError) and "FIFO" in outcome[0].message


def test_every_given_path_has_exactly_one_outcome(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(ARTICLE, encoding="utf-8")
    (folder / "b.xlsx").write_bytes(b"PK")
    fifo, sock = _specials(folder)
    given = [folder / "a.txt", folder / "b.xlsx", fifo, sock, folder / "missing.txt"]
    files, skipped = discover(given)
    assert len(files) + len(skipped) == len(given)
    missing = [s.path for s in skipped if s.reason == "no such file or folder"]
    assert missing == [str(folder / "missing.txt")]  # before: the FIFO and the socket were "missing" too
