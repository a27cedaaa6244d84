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
from ..types import Answer, Generated, Hit, Progress
from . import citation_meta, reply, strings

STAGES = {"embed": "embedding passages", "index": "indexing documents"}


def _line(text: str | None) -> str:
    return one_line(printable(text or "").replace("\n", " "))


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
    return strings.SEP.join([f"[{rank}] {_line(hit.document.title)}", *map(_line, citation_meta(hit))])


def format_answer(answer: Answer, width: int = 100) -> str:
    """The answer for ``qa ask``: the lead, then every citation in full (so no passage stands in for a lead)."""
    shown = reply(answer)
    lines = [f"问: {_line(answer.question)}"]
    if shown.query:
        lines.append(_line(strings.QUERY.format(query=shown.query)))
    lines.extend(f"注意: {_line(notice)}" for notice in answer.notices)
    if not shown.answered:
        lines.append(f"答: {strings.NO_ANSWER}" + (f"{strings.RELATED}:" if shown.citations else ""))
    elif shown.lead:
        lead = " ".join(_line(text) + (f"[{rank}]" if rank else "") for text, rank in shown.lead)
        lines.append(f"答: {lead}")
    for rank, hit in shown.citations:
        lines.append("")
        lines.append(citation_line(rank, hit) + f"  (score {hit.score:.3f})")
        body = _line(hit.passage.text)
        lines.extend(textwrap.wrap(body, width=width // 2, initial_indent="    ", subsequent_indent="    "))
    lines.append("")
    lines.append(f"模型: {_line(answer.encoder)}")
    return "\n".join(lines)


def format_generated(generated: Generated) -> list[str]:
    """Terminal lines for ``qa ask``: the checked answer, or the notice saying why the lead is shown."""
    if generated.fallback:
        return [f"注意: {strings.LLM_FALLBACK.format(reason=one_line(generated.fallback))}"]
    lines = [f"答（{one_line(generated.model)}，已核对）: {one_line(generated.text)}"]
    dropped = sum(not s.supported for s in generated.sentences)
    if dropped:
        lines.append(strings.LLM_DROPPED.format(n=dropped))
    return lines
