"""Plain data passed between the pipeline stages.

Every stage takes and returns these dataclasses and nothing heavier, so a
stage can be tested alone and the order of stages lives in ``pipeline.py``.
Offsets are always character offsets into ``Document.text`` (the *cleaned*
text), which is what the web chat shows when a citation is opened; a
citation is only valid if ``document.text[start:end] == passage.text``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One cleaned article with the metadata a citation needs."""

    doc_id: str  # stable: derived from the file's path, not its content
    path: str  # absolute path of the source file at load time
    title: str
    text: str  # cleaned body text; passage offsets point into this
    content_hash: str  # sha256 of ``text``: "changed" means this changed
    source: str | None = None  # 来源: the publisher named in the article
    date: str | None = None  # ISO 8601 (YYYY-MM-DD), when the article gives one
    url: str | None = None  # original address, when the page names one


@dataclass(frozen=True)
class Passage:
    """A run of whole sentences from one document, the unit that is cited."""

    doc_id: str
    ordinal: int  # 0-based position of the passage within its document
    text: str  # exactly ``document.text[start:end]``
    start: int
    end: int
    heading: str | None = None  # the section heading the passage sits under


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its document and the scores that ranked it."""

    passage: Passage
    document: Document
    score: float  # fused score, higher is better, in [0, 1]
    dense: float | None = None  # cosine similarity from the embedding model
    keyword: float | None = None  # BM25 score (unnormalised)


@dataclass(frozen=True)
class LeadSentence:
    """A sentence shown first in a reply, with the citation it comes from."""

    text: str
    citation: int  # 1-based rank of the hit it was taken from


@dataclass(frozen=True)
class Answer:
    """What the bot says to one question."""

    question: str  # as the user typed it
    query: str  # the interpreted query actually searched (follow-ups fold in)
    abstained: bool  # True: the collection holds no answer; hits are only "possibly related"
    hits: list[Hit] = field(default_factory=list)
    lead: list[LeadSentence] = field(default_factory=list)
    encoder: str = ""  # name of the embedding model that answered
    signals: dict[str, float] = field(default_factory=dict)  # what abstention was decided on
    notices: list[str] = field(default_factory=list)  # said beside the answer, e.g. that the question was cut
