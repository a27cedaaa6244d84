"""Build reports: the CLI's English lines and the web's Chinese text, from the same report."""

from __future__ import annotations

from types import SimpleNamespace

from qa.pipeline import BuildReport
from qa.present.report import summary, summary_chinese
from qa.types import Notice, Skipped


def _report(**changes) -> BuildReport:
    return BuildReport(
        added=["d1"], removed=["d2"], unchanged=["d3"], skipped=[Skipped("/x/bad\n.pdf", "no text")],
        notices=[Notice("/x/odd.txt", "2 undecodable byte(s) replaced by \ufffd")], embedded=4, passages=60, **changes
    )


def test_the_web_report_names_documents_by_title():
    report = SimpleNamespace(added=["d1"], updated=[], removed=["d2"], unchanged=["d3"], skipped=[
        SimpleNamespace(path="/x/bad.pdf", reason="no text")], full_rebuild_reason=None, embedded=4, passages=60,
        notices=[SimpleNamespace(path="/x/odd.txt", message="2 undecodable byte(s) replaced by \ufffd")])
    out = summary_chinese(report, {"d1": "新文章", "d2": "旧文章"})
    assert "新增 1 篇：《新文章》" in out and "删除 1 篇：《旧文章》" in out
    assert (
        "本次嵌入 4 段；索引共 60 段" in out
        and "未变 1 篇" in out
        and "跳过 bad.pdf：no text" in out
        and "已载入但请注意 odd.txt：2 undecodable byte(s) replaced" in out
        and "/x/" not in out
        and "更新" not in out
    )


def test_both_languages_say_the_same_lines_in_their_own_order():
    report = _report(full_rebuild_reason="--full was asked for")
    assert summary(report).splitlines() == [
        "Full rebuild: --full was asked for.",
        "1 added, 0 updated, 1 removed, 1 unchanged; 4 passages embedded; 60 passages in the index.",
        "Loaded /x/odd.txt: 2 undecodable byte(s) replaced by \ufffd",
        "Skipped /x/bad\\n.pdf: no text",
    ]
    assert summary_chinese(report, {"d1": "新文章"}).splitlines() == [
        "完全重建：--full was asked for",
        "新增 1 篇：《新文章》",
        "删除 1 篇：《d2》",
        "未变 1 篇",
        "本次嵌入 4 段；索引共 60 段。",
        "跳过 bad\\n.pdf：no text",
        "已载入但请注意 odd.txt：2 undecodable byte(s) replaced by \ufffd",
    ]
    assert summary_chinese(BuildReport(), {}) == "本次嵌入 0 段。"
