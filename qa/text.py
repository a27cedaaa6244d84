"""Character-level text helpers: what counts as a Chinese character, and output made safe to show.

Kept apart from word segmentation (``qa.segment``) so that reading, cleaning,
chunking and every printer can use them without loading jieba.
"""

from __future__ import annotations

import re

# CJK ideographs: Extension A, the unified block and the compatibility block. The one
# definition of "a Chinese character" for reading, cleaning, chunking and retrieval.
CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK = re.compile(f"[{CJK_RANGES}]")

# Terminal escape sequences, removed whole so no "[31m" debris is left: CSI (ESC [ … final byte, or the
# 8-bit C1 form U+009B), OSC/DCS/PM/APC strings up to BEL or ST (or the line's end, so an unterminated one
# cannot swallow an article), and two-character ESC sequences.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
# C0 and C1 controls and DEL (tab and newline are layout), plus the bidirectional overrides and
# isolates, which reorder what a terminal or browser shows ("Trojan Source").
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# one_line: what must not reach a one-line message raw (line breaks, escapes, bidi controls)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without terminal escapes and control characters; line breaks become ``\\n``.

    Why everywhere: article text, titles and questions reach terminals
    (``qa ask``, ``qa docs``) and browsers; an escape sequence in a title
    could rewrite the screen or a window title, a bidi override could make a
    passage read differently from what is stored.
    """
    if not text:
        return text
    return _CONTROLS.sub("", _BREAKS.sub("\n", _ESCAPES.sub("", text)))


def one_line(text: str) -> str:
    """``text`` made safe for a one-line message: every control character is shown escaped.

    For file names and error reasons: escaped rather than removed, so that a
    name with a newline or an escape code in it can still be found on disk
    (``bad\\nname.txt``), and the message stays one line.
    """

    def show(match: re.Match) -> str:
        char = match.group()
        if char in _NAMED:
            return _NAMED[char]
        return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"

    return _ONE_LINE.sub(show, str(text))

