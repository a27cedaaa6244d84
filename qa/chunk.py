"""Cutting a cleaned document into citable passages of whole sentences.

Why sentences: a cited passage that starts or stops mid-sentence reads as a
misquote, and an answer split across two passages cannot be found in either.
So passages are packed from whole sentences (Chinese and Western sentence
ends, closing quotes kept with their sentence), neighbouring passages share
whole sentences, and a sentence is only cut when it alone exceeds the
maximum. Short heading lines are kept with the passage they introduce and
recorded as its ``heading``. Offsets always index ``Document.text``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import CJK
from .types import Document, Passage

_ENDS = "。！？!?；;…"
_CLOSERS = "”’」』）)】》\"'］]"
_OPENERS = "“‘「『"
_QUOTE_CLOSERS = "”’」』"
_SHORT_QUOTE = 20
_SOFT_BREAKS = "，,、：:；; "
_HEADING_MAX = 40
_TOKEN = re.compile(r"\S+")


@dataclass
class _Unit:
    start: int
    end: int
    heading: bool  # a short line of its own without sentence-end punctuation


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans ``(start, end)`` in ``text``, stripped of surrounding whitespace.

    Line breaks end a sentence too (paragraphs, headings). A '.' ends a
    sentence only when followed by a space, a line end or CJK text, so
    ``1.26%`` and ``www.example.com`` stay whole.
    """
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        spans.extend(_line_sentences(text, line.start(), line.end()))
    return spans


def _line_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = i = start
    depth = 0  # open quotation marks on this line
    while i < end:
        char = text[i]
        if char in _OPENERS:
            depth += 1
        elif char in _QUOTE_CLOSERS:
            depth = max(0, depth - 1)
        is_end = (char in _ENDS and not _inside_url(text, i, end)) or (char == "." and _period_ends(text, i, end))
        if is_end and depth and _short_quote(text, i, end):
            is_end = False  # '。' inside a short quotation such as “走好安全。你我他”
        if is_end:
            j = i + 1
            while j < end and (text[j] in _ENDS or text[j] == "."):
                j += 1  # a run such as '……', '...', '?!'
            while j < end and text[j] in _CLOSERS:
                j += 1  # closing quotes and brackets stay with their sentence
            depth = max(0, depth - sum(text[k] in _QUOTE_CLOSERS for k in range(i + 1, j)))
            spans.append((begin, j))
            begin = i = j
        else:
            i += 1
    spans.append((begin, end))
    return [(s, e) for s, e in (_strip(text, s, e) for s, e in spans) if e > s]


_ANY_BREAK = re.compile(f"[\n.{re.escape(_ENDS)}]")  # a line break, '.' or any sentence end


def longest_unbroken(text: str) -> int:
    """Length of the longest stretch of ``text`` with no line break and no mark that can end a sentence.

    A cheap upper bound for the longest sentence (``split_sentences`` walks
    every character in Python; this is one regex split): the build uses it to
    tell a user when a file has no sentences to cut at, because its passages
    are then cut by length.
    """
    return max(map(len, _ANY_BREAK.split(text)), default=0)


def _period_ends(text: str, i: int, end: int) -> bool:
    nxt = text[i + 1] if i + 1 < end else ""
    if nxt == "" or nxt.isspace() or nxt in _CLOSERS or nxt == ".":
        return True
    return bool(CJK.match(nxt)) and not text[i - 1 : i].isdigit()


def _short_quote(text: str, i: int, end: int) -> bool:
    """True when the quotation closes soon after ``i`` and the end mark is not right before it."""
    window = text[i + 1 : min(end, i + 1 + _SHORT_QUOTE)]
    close = min((window.find(c) for c in _QUOTE_CLOSERS if c in window), default=-1)
    return close > 0 and not any(c in window[:close] for c in _ENDS + _OPENERS)


def _inside_url(text: str, i: int, end: int) -> bool:
    """ASCII '?', '!' or ';' followed by URL/query characters ('?id=3') does not end a sentence."""
    return (
        text[i] in "?!;"
        and i + 1 < end
        and (text[i + 1].isascii() and (text[i + 1].isalnum() or text[i + 1] in "=&_/%#"))
    )


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _units(text: str) -> list[_Unit]:
    units = []
    for start, end in split_sentences(text):
        whole_line = (start == 0 or text[start - 1] == "\n") and (end == len(text) or text[end] == "\n")
        core = text[start:end].rstrip(_CLOSERS)
        is_heading = whole_line and end - start <= _HEADING_MAX and bool(core) and core[-1] not in _ENDS + "."
        units.append(_Unit(start, end, is_heading))
    return units


def chunk_document(doc: Document, size: int = 400, max_size: int = 600, overlap: int = 1) -> list[Passage]:
    """Pack whole sentences into passages of about ``size`` characters.

    ``overlap`` whole sentences are repeated at the start of the next passage
    of the same section; a new heading always starts a new passage. A single
    sentence longer than ``max_size`` is cut (at a comma when possible).
    """
    text = doc.text
    max_size = max(max_size, size)
    spans: list[tuple[int, int, str | None]] = []
    current: list[_Unit] = []  # units of the passage being packed
    fresh = 0  # units in ``current`` not repeated from the previous passage
    heading: str | None = None
    heading_units: list[_Unit] = []

    def flush() -> None:
        nonlocal current, fresh
        if fresh:
            spans.append((current[0].start, current[-1].end, heading))
        current, fresh = [], 0

    for unit in _units(text):
        if unit.heading:
            if fresh:
                flush()
            heading_units = heading_units + [unit] if current and current == heading_units else [unit]
            heading = " ".join(" ".join(text[u.start : u.end].split()) for u in heading_units)
            current, fresh = list(heading_units), 0
            continue
        heading_units = []
        if fresh and unit.end - current[0].start > size:
            kept = [u for u in current[-overlap:] if not u.heading] if overlap else []
            flush()
            current = kept
        while current and unit.end - current[0].start > max_size and not current[0].heading:
            current = current[1:]  # drop overlap that would overflow the maximum
        if current and unit.end - current[0].start > max_size:
            flush_start = current[0].start  # headings alone: keep them with the first piece
            current = []
        else:
            flush_start = current[0].start if current else unit.start
        if unit.end - flush_start > max_size:
            for piece_start, piece_end in _cut(text, unit.start, unit.end, max_size, flush_start):
                spans.append((piece_start, piece_end, heading))
            current, fresh = [], 0
            continue
        current.append(unit)
        fresh += 1
    if fresh:
        flush()
    elif current and spans:  # trailing heading-like lines: keep them with the last passage
        start, _, last_heading = spans[-1]
        if current[-1].end - start <= max_size:
            spans[-1] = (start, current[-1].end, last_heading)
        else:
            spans.append((current[0].start, current[-1].end, None))
    elif current:
        spans.append((current[0].start, current[-1].end, None))
    return [
        Passage(doc_id=doc.doc_id, ordinal=n, text=text[s:e], start=s, end=e, heading=h)
        for n, (s, e, h) in enumerate(spans)
    ]


def _cut(text: str, start: int, end: int, max_size: int, first_start: int) -> list[tuple[int, int]]:
    """Cut one over-long sentence into pieces, preferring a comma in the second half."""
    pieces: list[tuple[int, int]] = []
    piece_start, cursor = first_start, start
    while end - piece_start > max_size:
        limit = piece_start + max_size
        cut = limit
        for k in range(limit, max(cursor, piece_start + max_size // 2), -1):
            if text[k - 1] in _SOFT_BREAKS:
                cut = k
                break
        s, e = _strip(text, piece_start, cut)
        pieces.append((s, e))
        piece_start = cursor = cut
        piece_start, _ = _strip(text, piece_start, end)
    pieces.append(_strip(text, piece_start, end))
    return [(s, e) for s, e in pieces if e > s]
