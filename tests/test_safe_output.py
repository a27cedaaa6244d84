"""Output is safe everywhere (issue 11, item 7): no control codes reach a terminal or a page,
only http(s) document URLs, and symbolic links cannot pull files from outside the indexed folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa.clean import to_document
from qa.cli import cli
from qa.load import discover
from qa.pipeline import load_documents
from qa.types import RawText
from qa.present.html import esc, render_answer, render_article
from qa.present.terminal import format_answer
from qa.types import Answer, Document, Hit, LeadSentence, Passage

ESCAPES = ["\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\x07", "\x00", "\u202e", "\x1b"]
BODY = "泰州市公安局海陵分局巡特警大队党总支现有党员54人，其中民警47人，辅警7人，下设2个党支部。"


def _dirty(text: str) -> str:
    return "".join(f"{part}{ESCAPES[i % len(ESCAPES)]}" for i, part in enumerate(text.split("，")))


def _clean(output: str) -> bool:
    return not any(code in output for code in ("\x1b", "\x9b", "\x07", "\x00", "\u202e"))


@pytest.mark.parametrize(
    "url, kept",
    [
        ("https://example.gov.cn/a/1.html", True),
        ("http://example.com", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("//evil.example/x", False),
        ("https://", False),
        ("https://exa mple.com", False),
        ("vbscript:msgbox", False),
    ],
)
def test_only_absolute_http_urls_are_kept(url: str, kept: bool) -> None:
    from qa.clean import safe_url

    assert (safe_url(url) is not None) is kept


def test_ingestion_strips_control_codes_and_drops_script_urls(tmp_path: Path) -> None:
    raw = RawText(
        str(tmp_path / "a.html"),
        f"标题\x1b[31m行\n\n{_dirty(BODY)}\n\n原文地址：javascript:alert(1)",
        title="标题\x1b]0;owned\x07行",
        url="javascript:alert(document.cookie)",
    )
    doc = to_document(raw)
    assert _clean(doc.text + doc.title) and "54人" in doc.text and doc.title == "标题行"
    assert doc.url is None
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>交警\x1b[2J大队</title><meta property='og:url' content='javascript:alert(1)'>"
        f"<link rel='canonical' href='javascript:void(0)'></head><body><p>{BODY}</p></body></html>",
        encoding="utf-8",
    )
    (doc,) = load_documents([page])[0]
    assert doc.url is None and doc.title == "交警大队"


def _answer_with_escapes() -> Answer:
    text = _dirty(BODY)
    doc = Document("d-1", "/x/\x1b[2J.txt", "标题\x1b]0;owned\x07", text, "h", source="来源\x9b1m", date="2020-01-01")
    passage = Passage("d-1", 0, text, 0, len(text), heading="小标题\u202e")
    hit = Hit(passage, doc, 0.9)
    return Answer("问\x1b[2J题", "问\x1b[2J题 改写", False, [hit], [LeadSentence(text, 1)], "tiny\x1b[1m")


def test_terminal_answer_prints_no_control_codes_even_from_an_old_index() -> None:
    """Documents in an index built before ingestion stripped them may still hold escapes."""
    output = format_answer(_answer_with_escapes())
    assert _clean(output) and "54人" in output


def test_web_rendering_strips_control_codes_and_unsafe_urls() -> None:
    answer = _answer_with_escapes()
    html = render_answer(answer, ["党员"]) + render_article(answer.hits[0].document, 0, 5, ["党员"])
    assert _clean(html) and "54人" in html
    assert esc("a\x1b[31mb<") == "ab&lt;"
    doc = Document("d", "/x.txt", "t", BODY, "h", url="javascript:alert(1)")
    assert "javascript" not in render_article(doc, 0, 3, [])
    doc = Document("d", "/x.txt", "t", BODY, "h", url="https://example.com/a")
    assert "https://example.com/a" in render_article(doc, 0, 3, [])


@pytest.fixture
def env(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_MODEL", str(tiny_model_dir))
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_cli_prints_no_control_codes_from_questions_titles_or_names(env: Path) -> None:
    docs = env / "docs"
    docs.mkdir()
    (docs / "page.html").write_text(
        f"<html><head><title>海陵\x1b]0;owned\x07巡特警</title></head><body><p>{BODY}</p></body></html>",
        encoding="utf-8",
    )
    (docs / "bad\x1b[2Jname\n.txt").write_bytes(b"")
    build = run("build", str(docs))
    assert build.exit_code == 0 and _clean(build.output)
    assert "Skipped " in build.stdout and "bad\\x1b[2Jname\\n.txt" in build.stdout
    listing = run("docs")
    assert _clean(listing.output) and "海陵巡特警" in listing.stdout
    asked = run("ask", "\x1b[2J海陵\x1b]0;x\x07巡特警有多少党员？\u202e")
    assert asked.exit_code == 0 and _clean(asked.output) and "海陵巡特警有多少党员？" in asked.stdout
    as_json = run("ask", "--json", "海陵\x9b2J巡特警")
    assert json.loads(as_json.stdout)["question"] == "海陵巡特警"
    error = run("build", str(env / "no\nsuch\x1b[2Jfolder"))
    assert error.exit_code != 0 and len(error.stderr.strip().splitlines()) == 1 and _clean(error.stderr)


# ---------------------------------------------------------------- symbolic links


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder, outside = tmp_path / "docs", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "own.txt").write_text(BODY, encoding="utf-8")
    secret = outside / "secret.txt"
    secret.write_text("机密：" + BODY.replace("54", "99"), encoding="utf-8")
    link = folder / "link.txt"
    link.symlink_to(secret)
    return folder, secret, link


def test_links_leaving_the_folder_are_skipped_unless_followed(linked) -> None:
    folder, secret, link = linked
    (folder / "same.txt").symlink_to(folder / "own.txt")  # inside: indexed once, as its target
    (folder / "outdir").symlink_to(secret.parent, target_is_directory=True)
    files, skipped = discover([folder])
    assert files == [folder.resolve() / "own.txt"]
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"link.txt", "outdir"}
    assert "outside the indexed folder" in reasons["link.txt"] and "--follow-links" in reasons["link.txt"]
    files, _ = discover([folder], follow_links=True)
    assert link.parent.resolve() / "link.txt" in files and secret not in files


def test_a_deleted_link_removes_its_document_on_the_next_build(linked, env: Path) -> None:
    """Before: a followed link was indexed under its target's path, outside the scanned folder,
    so the rescan never looked at it (and the target still existed): it stayed forever."""
    folder, secret, link = linked
    plain = run("build", str(folder))
    assert "Skipped " in plain.stdout and "link.txt" in plain.stdout and "--follow-links" in plain.stdout
    assert len(json.loads(run("docs", "--json").stdout)) == 1
    assert run("build", "--follow-links", str(folder)).exit_code == 0
    paths = {d["path"] for d in json.loads(run("docs", "--json").stdout)}
    assert str(folder.resolve() / "link.txt") in paths and len(paths) == 2
    os.unlink(link)
    rebuilt = run("build", "--follow-links", str(folder))
    assert "1 removed" in rebuilt.stdout
    assert {d["path"] for d in json.loads(run("docs", "--json").stdout)} == {str(folder.resolve() / "own.txt")}
    assert secret.exists()
