"""Plain-text rendering of an answer for the terminal (``qa ask``)."""

from __future__ import annotations

import textwrap

from .types import Answer, Hit


def location(hit: Hit) -> str:
    """Where the passage sits: its section and character range in the cleaned article."""
    p = hit.passage
    where = f"第{p.ordinal + 1}段, 字符 {p.start}–{p.end}"
    return f"{p.heading} · {where}" if p.heading else where


def citation_line(rank: int, hit: Hit) -> str:
    d = hit.document
    parts = [f"[{rank}] {d.title}"]
    parts.append(d.source or "来源不详")
    if d.date:
        parts.append(d.date)
    parts.append(location(hit))
    return " · ".join(parts)


def format_answer(answer: Answer, width: int = 100) -> str:
    lines = [f"问: {answer.question}"]
    if answer.query != answer.question:
        lines.append(f"理解为: {answer.query}")
    lines.extend(f"注意: {notice}" for notice in answer.notices)
    if answer.abstained:
        lines.append("答: 资料库中没有找到能回答这个问题的内容。以下段落可能相关:")
    elif answer.lead:
        lead = " ".join(f"{s.text}[{s.citation}]" for s in answer.lead)
        lines.append(f"答: {lead}")
    for rank, hit in enumerate(answer.hits, start=1):
        lines.append("")
        lines.append(citation_line(rank, hit) + f"  (score {hit.score:.3f})")
        body = hit.passage.text.replace("\n", " ")
        lines.extend(textwrap.wrap(body, width=width // 2, initial_indent="    ", subsequent_indent="    "))
    lines.append("")
    lines.append(f"模型: {answer.encoder}")
    return "\n".join(lines)
