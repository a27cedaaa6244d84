"""An answer as JSON: ``qa ask --json`` and ``qa eval`` (``answer_to_json``), the web API (``public_json``).

Every hit is listed, shown on a page or not: the JSON is the record of what
retrieval returned, and ``qa eval`` scores retrieval from it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..clean import safe_url
from ..types import Answer, Generated


def answer_to_json(result: Answer) -> dict[str, Any]:
    """The shape of ``qa ask --json`` and of the web API."""
    return {
        "question": result.question,
        "query": result.query,
        "abstained": result.abstained,
        "notices": list(result.notices),
        "signals": result.signals,
        "encoder": result.encoder,
        "lead": [asdict(s) for s in result.lead],
        "citations": [
            {
                "rank": rank,
                "doc_id": h.document.doc_id,
                "title": h.document.title,
                "source": h.document.source,
                "date": h.document.date,
                "url": safe_url(h.document.url),  # an older index may hold a javascript: URL
                "path": h.document.path,
                "heading": h.passage.heading,
                "text": h.passage.text,
                "start": h.passage.start,
                "end": h.passage.end,
                "score": round(h.score, 4),
            }
            for rank, h in enumerate(result.hits, start=1)
        ],
        **({"generated": generated_json(result.generated)} if result.generated else {}),
    }


def public_json(answer: Answer) -> dict[str, Any]:
    """`qa ask --json` for the web: the same keys, but no server file paths.

    A path is the server's business, and gradio_client would take any dict
    with a string "path" for a file to download (and fail with 403).
    """
    data = answer_to_json(answer)
    for citation in data["citations"]:
        citation["path"] = None
    return data


def generated_json(generated: Generated) -> dict[str, Any]:
    """The ``"generated"`` object of ``qa ask --json`` and the web API."""
    return {
        "model": generated.model,
        "text": generated.text,
        "sentences": [asdict(s) for s in generated.sentences],
        "fallback": generated.fallback,
    }
