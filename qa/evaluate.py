"""Retrieval and lead quality on a JSONL question set, the way ``qa eval`` reports it.

A row is ``{"question", "answer", "doc", "kind"}``; ``answer`` null marks a
question the collection cannot answer. A hit is a returned passage that
contains the answer text and, when the row names a ``doc``, comes from the
file of that name. The same definition scores the lead (the sentences shown
first): it must contain the answer text.

Citation length is reported because a citation is only checkable while it is
a passage, not an article (median, 90th percentile and maximum characters
over every citation shown, answerable or not).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from .errors import UsageError


def read_rows(path: Path) -> list[dict]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"Cannot read {path}: {error.strerror}.", "Give a JSONL file of questions.") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{number} is not valid JSON.", "Each line must be one JSON object.") from None
        if not isinstance(row, dict) or not row.get("question"):
            raise UsageError(f"{path}:{number} has no 'question'.", 'Each line needs {"question": ..., "answer": ...}.')
        rows.append(row)
    return rows


def _is_hit(citation: dict, row: dict) -> bool:
    if row["answer"] not in citation["text"]:
        return False
    return not row.get("doc") or Path(citation["path"]).name == row["doc"]


def score(rows: Iterable[dict], results: Iterable[dict]) -> dict:
    """Metrics from rows and the ``qa ask --json`` objects answering them."""
    per_kind: dict[str, list[dict]] = defaultdict(list)
    answerable, unanswerable, misses = [], [], []
    lengths: list[int] = []
    for row, result in zip(rows, results, strict=True):
        lengths.extend(len(c["text"]) for c in result["citations"])
        if row.get("answer") is None:
            unanswerable.append(result["abstained"])
            per_kind[row.get("kind") or "unanswerable"].append({"abstained": result["abstained"]})
            continue
        ranks = [c["rank"] for c in result["citations"] if _is_hit(c, row)]
        first = min(ranks) if ranks else None
        lead_text = "".join(s["text"] for s in result["lead"])
        item = {
            "hit1": first == 1,
            "hit5": first is not None and first <= 5,
            "rr": 1.0 / first if first else 0.0,
            "lead": row["answer"] in lead_text,
            "abstained": result["abstained"],
        }
        answerable.append(item)
        per_kind[row.get("kind") or "answerable"].append(item)
        if not item["hit1"]:
            misses.append({"id": row.get("id"), "question": row["question"], "rank": first})
    abstained_wrongly = sum(i["abstained"] for i in answerable)
    abstained_rightly = sum(unanswerable)
    report = {
        "answerable": len(answerable),
        **_means(answerable),
        "unanswerable": len(unanswerable),
        "abstained_unanswerable": abstained_rightly,
        "abstained_answerable": abstained_wrongly,
        "abstention_precision": _ratio(abstained_rightly, abstained_rightly + abstained_wrongly),
        "abstention_recall": _ratio(abstained_rightly, len(unanswerable)),
        "citation_chars": _spread(lengths),
        "kinds": {
            kind: {"n": len(items), **_means([i for i in items if "hit1" in i])} for kind, items in per_kind.items()
        },
        "misses": misses,
    }
    return report


def _means(items: list[dict]) -> dict:
    if not items:
        return {}
    n = len(items)
    return {
        "hit@1": round(sum(i["hit1"] for i in items) / n, 3),
        "hit@5": round(sum(i["hit5"] for i in items) / n, 3),
        "mrr": round(sum(i["rr"] for i in items) / n, 3),
        "lead": round(sum(i["lead"] for i in items) / n, 3),
    }


def _spread(values: list[int]) -> dict:
    """Median, 90th percentile (nearest rank) and maximum."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(share: float) -> int:
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

    return {"n": len(ordered), "median": at(0.5), "p90": at(0.9), "max": ordered[-1]}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def format_report(report: dict, label: str = "") -> str:
    lines = [f"{label}answerable {report['answerable']}: hit@1 {report.get('hit@1')}  hit@5 {report.get('hit@5')}"
             f"  MRR {report.get('mrr')}  lead {report.get('lead')}"]
    if report["unanswerable"]:
        lines.append(
            f"unanswerable {report['unanswerable']}: abstained {report['abstained_unanswerable']}"
            f" (precision {report['abstention_precision']}, recall {report['abstention_recall']});"
            f" answerable abstained {report['abstained_answerable']}"
        )
    spread = report.get("citation_chars")
    if spread:
        lines.append(f"citations {spread['n']}: length median {spread['median']}  p90 {spread['p90']}"
                     f"  max {spread['max']} characters")
    for kind, figures in sorted(report["kinds"].items()):
        extra = "  ".join(f"{k} {v}" for k, v in figures.items() if k != "n")
        lines.append(f"  {kind:<13} n={figures['n']:<4} {extra}")
    return "\n".join(lines)
