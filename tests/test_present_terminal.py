"""Terminal text (``qa ask``): the same choices and words as the web chat, laid out as plain lines."""

from __future__ import annotations

from qa.present import html as page
from qa.present.terminal import format_answer
from qa.types import Answer


def test_a_notice_is_shown_in_the_web_reply_and_the_terminal():
    answer = Answer("问", "问", True, [], [], "e5", notices=["问题超过 500 个字符，只按前 500 个字符检索。"])
    assert '<div class="qa-notice">问题超过 500 个字符' in page.render_answer(answer, [])
    assert "注意: 问题超过 500 个字符" in format_answer(answer)
