"""Plain data passed between the pipeline stages.

Every stage takes and returns these dataclasses and nothing heavier, so a
stage can be tested alone and the order of stages lives in ``pipeline.py``.
Offsets are always character offsets into ``Document.text`` (the *cleaned*
text), which is what the web chat shows when a citation is opened; a
citation is only valid if ``document.text[start:end] == passage.text``.
The two ``Protocol`` classes at the end are the seam to the embedding model:
the pipeline types its encoders by them, never by the concrete classes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np

Progress = Callable[[str, int, int], None]  # (stage, done, total): how long work reports how far it got
Status = Callable[[str], None]  # one line saying what slow one-off work is doing now ("exporting the model...")


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, hex: what ``Document.content_hash`` holds and caches are keyed by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class RawText:
    """Text read from one file, plus hints its format gave (before cleaning)."""

    path: str
    text: str
    title: str | None = None
    url: str | None = None
    date: str | None = None
    replaced: int = 0  # undecodable bytes replaced by U+FFFD


@dataclass
class Skipped:
    """A file that was not loaded, and why (shown to the user by name)."""

    path: str
    reason: str


@dataclass
class Notice:
    """A file that loaded, with something its owner should know (e.g. bytes that were replaced)."""

    path: str
    message: str


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
class CheckedSentence:
    """One sentence of a model's reply, with the passages it cites (1-based) and the check's verdict."""

    text: str  # without its [n] markers
    citations: list[int]
    supported: bool  # shown only when True (qa/verify.py)
    why: str  # the check's reason, in words a reader can follow


@dataclass(frozen=True)
class Generated:
    """A written answer from an LLM after the check (qa/generate.py, qa/verify.py)."""

    model: str
    text: str  # exactly what is shown: the supported sentences, each with its [n]
    sentences: list[CheckedSentence] = field(default_factory=list)
    fallback: str | None = None  # why the extractive lead is shown instead; None: ``text`` is shown
    seconds: float = 0.0  # how long the model took (qa eval --llm)


@dataclass(frozen=True)
class Answer:
    """What the bot says to one question."""

    question: str  # as the user typed it
    query: str  # the interpreted query actually searched (follow-ups fold in)
    abstained: bool  # True: the collection holds no answer; hits are only "possibly related"
    hits: list[Hit] = field(default_factory=list)
    lead: list[LeadSentence] = field(default_factory=list)
    encoder: str = ""  # name of the embedding model that answered
    signals: dict[str, float | str | None] = field(default_factory=dict)  # abstention: what decided it, and "reason"
    notices: list[str] = field(default_factory=list)  # said beside the answer, e.g. that the question was cut
    generated: Generated | None = None  # the checked written answer, only when QA_LLM_URL is set


@dataclass(frozen=True)
class DocInfo:
    """One indexed document as listed by ``qa docs`` (no body text)."""

    doc_id: str
    title: str
    source: str | None
    date: str | None
    url: str | None
    path: str
    passages: int
    content_hash: str


class Encoder(Protocol):
    """What the question path needs from an embedding model (the light query encoder is one)."""

    @property
    def name(self) -> str:
        """Shown to the user."""
        ...

    @property
    def identity(self) -> str:
        """Changes whenever the vectors would: an index built with another identity must be rebuilt."""
        ...

    @property
    def notice(self) -> str | None:
        """One line when the configured model could not be used and another answers."""
        ...

    @property
    def dim(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, dim) for questions."""
        ...


class PassageEncoder(Encoder, Protocol):
    """What a build needs in addition: passages, with progress for long runs."""

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit vectors (n, dim) for passages, in the order given; ``progress(done)`` now and then."""
        ...
