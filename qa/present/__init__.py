"""Presentation: an ``Answer`` or a build report as JSON, HTML for the web chat, or terminal text.

What a reply shows is decided here once (``reply``): which citations may be
shown, which query line, whether the answer counts as answered. The
presenters (``json``, ``html``, ``terminal``, ``report``) only lay that out,
with the words of ``strings``, so the browser and the terminal say the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import strings
from ..types import Answer, Hit, Passage


def is_valid(hit: Hit) -> bool:
    """A citation is shown only if its passage really is that text of the article.

    An index damaged or written by an older version could pair a passage with
    offsets that no longer hold; a citation would then open the wrong text.
    """
    p = hit.passage
    return 0 <= p.start < p.end <= len(hit.document.text) and hit.document.text[p.start : p.end] == p.text


def position_label(passage: Passage) -> str:
    """Where a passage sits: section, passage number, character range."""
    where = strings.POSITION.format(number=passage.ordinal + 1, start=passage.start, end=passage.end)
    return f"{passage.heading}{strings.SEP}{where}" if passage.heading else where


def citation_meta(hit: Hit) -> list[str]:
    """What is said about a citation besides its title: source, date and position, those that are known."""
    return [m for m in (hit.document.source, hit.document.date, position_label(hit.passage)) if m]


@dataclass(frozen=True)
class Reply:
    """What every presenter shows of one answer."""

    query: str | None  # the query searched for, when it is not the question as asked (a folded follow-up)
    answered: bool  # False: say NO_ANSWER (the bot abstained, or no citation can be shown)
    lead: list[tuple[str, int | None]]  # lead sentences, each with the rank of its citation (None: not shown)
    citations: list[tuple[int, Hit]]  # the citations that may be shown, with their rank in the answer


def reply(answer: Answer) -> Reply:
    """Decide what is shown; ranks stay those of ``answer.hits``, so a dropped citation leaves a gap."""
    citations = [(rank, hit) for rank, hit in enumerate(answer.hits, start=1) if is_valid(hit)]
    shown = {rank for rank, _ in citations}
    answered = not answer.abstained and bool(citations)
    lead = [(s.text, s.citation if s.citation in shown else None) for s in answer.lead] if answered else []
    query = answer.query if answer.query and answer.query != answer.question else None
    return Reply(query, answered, lead, citations)
