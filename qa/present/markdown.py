"""Markdown for the OpenAI-compatible API: the reply's text, and its pieces for a stream.

The reply is what a chat front end (Open WebUI, LobeChat, Dify …) shows: the
answer with its citation numbers ``[n]`` (the checked written answer when an
LLM wrote one, else the lead), then the sources, one line each:
``[n] [title](link) · source · date``, the link opening that article in the
web chat with the cited passage marked. What is shown is decided by
``present.reply``, as for the chat and the terminal.

Article text is data, never markup: every piece of it is escaped, so a title
holding ``[x](javascript:…)`` or ``<img onerror>`` shows as text.
"""

from __future__ import annotations

import re
from typing import Callable
from urllib.parse import quote

from ..text import printable
from ..types import Answer, Hit
from . import reply, strings
from .html import CITE_PREFIX, cite_href

SOURCES = "来源："
RELATED = strings.RELATED + "："
EXCERPT_CHARS = 120  # the best passage stands in for a missing lead, shortened to this

_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#&])")
_LINE_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])", re.MULTILINE)


def escape(text: str) -> str:
    """Text shown as itself by a Markdown renderer: the characters that make markup are backslashed,
    line breaks become spaces (a reply line never turns into a heading, a list or a table)."""
    flat = printable(text or "").replace("\r", " ").replace("\n", " ")
    flat = _SPECIAL.sub(r"\\\1", flat)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), flat)


def article_link(base_url: str, hit: Hit) -> str:
    """The web chat's page opening this citation's article, its passage marked (``?cite=``,
    the chat's own citation value: ``layout`` reads it on load)."""
    cite = cite_href(hit.document.doc_id, hit.passage.start, hit.passage.end)[len(CITE_PREFIX):]
    return f"{base_url.rstrip('/')}/?cite={quote(cite, safe='')}"


def source_line(rank: int, hit: Hit, link: str | None) -> str:
    """``[n] [title](link) · source · date``: the pieces that are known."""
    title = escape(hit.document.title) or "（无标题）"
    if link:
        title = f"[{title}]({link})"  # quoted whole: no space or parenthesis in it
    meta = [escape(m) for m in (hit.document.source, hit.document.date) if m]
    return strings.SEP.join([f"[{rank}] {title}", *meta])  # "[1] [t](u)": not a reference link


def _answer_text(answer: Answer, shown_lead: list[tuple[str, int | None]], first: tuple[int, Hit]) -> list[str]:
    generated = answer.generated
    if generated is not None and not generated.fallback and generated.text.strip():
        lines = [escape(generated.text).replace("\\[", "[").replace("\\]", "]")]  # its [n] stay citations
        dropped = sum(not s.supported for s in generated.sentences)
        if dropped:
            lines.append(f"*{escape(strings.LLM_DROPPED.format(n=dropped))}*")
        return lines
    if shown_lead:
        return ["".join(escape(text) + (f"[{rank}]" if rank else "") for text, rank in shown_lead)]
    rank, hit = first  # no lead sentence: the best passage speaks for itself
    text = hit.passage.text
    excerpt = text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")
    return [f"{escape(excerpt)}[{rank}]"]


def render_reply(answer: Answer, link: Callable[[Hit], str | None] = lambda hit: None) -> str:
    """The whole reply as Markdown; ``link`` gives each citation's article address (None: no link)."""
    shown = reply(answer)
    parts: list[str] = []
    if shown.query:
        parts.append(f"*{escape(strings.QUERY.format(query=shown.query))}*")
    parts.extend(f"*{escape(notice)}*" for notice in answer.notices)
    if shown.answered:
        parts.extend(_answer_text(answer, shown.lead, shown.citations[0]))
    else:
        parts.append(strings.NO_ANSWER)
    if shown.citations:
        heading = SOURCES if shown.answered else RELATED
        lines = [f"- {source_line(rank, hit, link(hit))}" for rank, hit in shown.citations]
        parts.append(heading + "\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def pieces(text: str) -> list[str]:
    """The reply cut for a stream, after each sentence end and line break; joined, exactly ``text``."""
    return [piece for piece in re.split(r"(?<=[。！？；])|(?<=\n)(?!\n)", text) if piece]
