"""Plain text for the terminal: an answer (``qa ask``) and build progress (``qa build``, first start).

Every piece of text shown comes from a question or a file, so each passes
through ``printable`` (and ``one_line`` where it must stay on one line):
an index built before ingestion stripped control characters, or a crafted
question, can then never send escape codes to the user's terminal.
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any, Mapping

from ..text import one_line, printable
from ..types import Answer, Hit, Passage, Progress

STAGES = {"embed": "embedding passages", "index": "indexing documents"}


def position_label(passage: Passage) -> str:
    """Where a passage sits, in the terminal and the web chat alike: section, passage number, character range."""
    where = f"第{passage.ordinal + 1}段 · 字符 {passage.start}–{passage.end}"
    return f"{passage.heading} · {where}" if passage.heading else where


def _line(text: str | None) -> str:
    return one_line(printable(text or "").replace("\n", " "))


def location(hit: Hit) -> str:
    """Where the passage sits: its section and character range in the cleaned article."""
    return _line(position_label(hit.passage))


def progress_bars(labels: Mapping[str, str] = STAGES) -> Progress:
    """A ``Progress`` that draws one tqdm bar per stage on stderr, closed when the stage is done."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=labels.get(stage, stage), unit="", file=sys.stderr, leave=False)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return report


def citation_line(rank: int, hit: Hit) -> str:
    d = hit.document
    parts = [f"[{rank}] {_line(d.title)}"]
    parts.append(_line(d.source) or "来源不详")
    if d.date:
        parts.append(_line(d.date))
    parts.append(location(hit))
    return " · ".join(parts)


def format_answer(answer: Answer, width: int = 100) -> str:
    lines = [f"问: {_line(answer.question)}"]
    if answer.query != answer.question:
        lines.append(f"理解为: {_line(answer.query)}")
    lines.extend(f"注意: {_line(notice)}" for notice in answer.notices)
    if answer.abstained:
        lines.append("答: 资料库中没有找到能回答这个问题的内容。以下段落可能相关:")
    elif answer.lead:
        lead = " ".join(f"{_line(s.text)}[{s.citation}]" for s in answer.lead)
        lines.append(f"答: {lead}")
    for rank, hit in enumerate(answer.hits, start=1):
        lines.append("")
        lines.append(citation_line(rank, hit) + f"  (score {hit.score:.3f})")
        body = _line(hit.passage.text)
        lines.extend(textwrap.wrap(body, width=width // 2, initial_indent="    ", subsequent_indent="    "))
    lines.append("")
    lines.append(f"模型: {_line(answer.encoder)}")
    return "\n".join(lines)
