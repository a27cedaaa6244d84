"""Character-level helpers: output made safe for a terminal or a one-line message, and CJK ranges."""

from __future__ import annotations

from qa.text import CJK, one_line, printable


def test_printable_removes_whole_escape_sequences_and_keeps_layout() -> None:
    assert printable("红\x1b[31m色\x1b[0m") == "红色"
    assert printable("a\x1b]0;title\x07b") == "ab"  # OSC: a window-title change
    assert printable("a\x9b2Jb\x00c\x7fd\u202ee") == "abcde"
    assert printable("行一\r\n行二\r行三\x0c行四\t列") == "行一\n行二\n行三\n行四\t列"
    assert printable("a\x1b]unterminated\nnext line") == "a\nnext line"  # an open OSC ends at the line
    assert printable("emoji 👍🏽 and 中文") == "emoji 👍🏽 and 中文"


def test_one_line_escapes_instead_of_removing() -> None:
    assert one_line("a\nb\tc\x1b[1m\u202e") == "a\\nb\\tc\\x1b[1m\\u202e"
    assert "\n" not in one_line("x\u2028y\u0085z")


def test_cjk_covers_the_ideograph_blocks_and_nothing_else() -> None:
    assert all(CJK.match(c) for c in "中㐀\uf900")  # unified, Extension A, compatibility
    assert not any(CJK.match(c) for c in "aＡ，。1")
