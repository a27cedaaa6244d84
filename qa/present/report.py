"""What a build or removal changed: in English for the ``qa`` command, in Chinese for the web chat.

Both are laid out from one description per language (``_Wording``): the
line for a full rebuild, the counts, and one line per file that was skipped
or loaded with a caveat. The CLI names files by path (the user typed the
folder), the web by file name and documents by title (paths are the server's
business). File names and reasons go through ``one_line``: a name with a
newline or an escape code in it stays one line and cannot drive a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from ..text import one_line
from ..types import Notice, Skipped


class Changes(Protocol):
    """What a build or removal reports (``pipeline.BuildReport``)."""

    added: list[str]
    updated: list[str]
    removed: list[str]
    unchanged: list[str]
    skipped: list[Skipped]
    notices: list[Notice]
    full_rebuild_reason: str | None
    embedded: int
    passages: int


@dataclass(frozen=True)
class _Wording:
    rebuild: str  # "{reason}"
    counts: Callable[[Changes, Mapping[str, str]], list[str]]  # the report and the documents' titles by id
    files: tuple[tuple[str, str, str], ...]  # (list, its field saying why, line with {file} and {reason}), in order
    file: Callable[[str], str]  # how a file's path is named


def _english_counts(report: Changes, _titles: Mapping[str, str]) -> list[str]:
    return [
        f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged; {report.embedded} passages embedded; "
        f"{report.passages} passages in the index."
    ]


def _chinese_counts(report: Changes, titles: Mapping[str, str]) -> list[str]:
    lines = []
    for label, ids in (("新增", report.added), ("更新", report.updated), ("删除", report.removed)):
        if ids:
            lines.append(f"{label} {len(ids)} 篇：" + "、".join(f"《{titles.get(i, i)}》" for i in ids))
    if report.unchanged:
        lines.append(f"未变 {len(report.unchanged)} 篇")
    total = report.passages
    lines.append(f"本次嵌入 {report.embedded} 段" + (f"；索引共 {total} 段。" if total else "。"))
    return lines


ENGLISH = _Wording(
    rebuild="Full rebuild: {reason}.",
    counts=_english_counts,
    files=(("notices", "message", "Loaded {file}: {reason}"), ("skipped", "reason", "Skipped {file}: {reason}")),
    file=str,
)
CHINESE = _Wording(
    rebuild="完全重建：{reason}",
    counts=_chinese_counts,
    files=(("skipped", "reason", "跳过 {file}：{reason}"), ("notices", "message", "已载入但请注意 {file}：{reason}")),
    file=lambda path: Path(path).name,
)


def _text(report: Changes, wording: _Wording, titles: Mapping[str, str]) -> str:
    lines = []
    if report.full_rebuild_reason:
        lines.append(wording.rebuild.format(reason=report.full_rebuild_reason))
    lines.extend(wording.counts(report, titles))
    for kind, why, line in wording.files:
        items: Sequence[Skipped | Notice] = getattr(report, kind)
        lines.extend(line.format(file=one_line(wording.file(i.path)), reason=one_line(getattr(i, why))) for i in items)
    return "\n".join(lines)


def summary(report: Changes) -> str:
    """For the ``qa`` command (``qa build``, ``qa remove``, the first start), in English."""
    return _text(report, ENGLISH, {})


def summary_chinese(report: Changes, titles: Mapping[str, str]) -> str:
    """For the web chat, in Chinese, naming documents by title (plain text)."""
    return _text(report, CHINESE, titles)
