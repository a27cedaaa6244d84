"""Answering in the web chat: the chat turn, the article behind a citation, and the read-only API.

All HTML comes from ``page.py``, which escapes every piece of document text;
the chat component additionally sanitises. Whatever fails, a web user reads
one line without server paths (``public_message``); the details go to the
server log. The admin handlers share that rule (``web_errors``).

An index outage (``IndexUnavailable``: Milvus down) is the operator's
business: its message names the server's address and the settings to fix,
so visitors read UNAVAILABLE instead, the log gets the details in one line,
and the admin handlers (past the password) still show them.
"""

from __future__ import annotations

import html
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ..present import html as page
from ..present import is_valid
from ..present.json import public_json
from ..errors import IndexMissing, IndexUnavailable, QAError, UsageError
from ..segment import keywords
from ..text import one_line, printable
from .guard import hide_paths

if TYPE_CHECKING:
    from ..pipeline import Bot

GENERIC_ERROR = "服务器内部错误，请稍后再试；详细信息已记录在服务器日志中。"
UNAVAILABLE = "服务暂时不可用，请稍后再试。"

log = logging.getLogger("qa.web")


def public_message(error: BaseException, detailed: bool = False) -> str:
    """What a web user may read about a failure: a QAError's own line without server paths,
    else a generic line (the details go to the server log). An index outage is told to
    visitors as UNAVAILABLE; ``detailed`` (the admin, past the password) reads it whole."""
    if isinstance(error, IndexUnavailable) and not detailed:
        log.warning("index unavailable: %s", one_line(str(error)))
        return UNAVAILABLE
    if isinstance(error, QAError):
        return hide_paths(str(error))
    log.error("unexpected error in a web handler", exc_info=error)
    return GENERIC_ERROR


@contextmanager
def web_errors(detailed: bool = False) -> Iterator[None]:
    """Every failure of a handler reaches the browser as one gr.Error line (see public_message);
    gradio prints no traceback for it: what the operator needs is logged there."""
    import gradio as gr

    try:
        yield
    except gr.Error:
        raise
    except Exception as error:  # noqa: BLE001 - the point: nothing raw reaches a web user
        raise gr.Error(public_message(error, detailed), print_exception=False) from None


def text_argument(value: Any, what: str) -> str:
    """An API argument that must be text (None counts as empty): API callers can send any JSON."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{what}必须是文本。")
    return value


def _history(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise UsageError("history 必须是由问题文本组成的列表。")
    return value


def documents(bot: Bot) -> list[dict]:
    """The indexed documents as the web shows them; none while a served index is down."""
    with web_errors():
        try:
            infos = bot.documents()
        except (IndexMissing, IndexUnavailable):  # a served index that is down: the chat says so when asked
            return []
    keys = ("doc_id", "title", "source", "date", "url", "passages")
    return [{k: getattr(info, k, None) for k in keys} for info in infos]


class Chat:
    """The chat's event handlers and the read-only API, bound to one Bot; plain methods so tests can call them."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def reply(self, message: str, messages: list[dict] | None) -> tuple[list[dict], dict, str, str]:
        """One chat turn: (messages, answer JSON, cleared input, article panel)."""
        messages = list(messages or [])
        question = printable(message).strip() if isinstance(message, str) else ""  # echoed: no control codes
        if not question:
            return messages, {}, "", page.render_notice("请输入问题。")
        panel = page.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。")
        try:
            answer = self.bot.ask(question, page.earlier_questions(messages))
            words = keywords(answer.query)
            content, data = page.render_answer(answer, words), public_json(answer)
            valid = [h for h in answer.hits if is_valid(h)]
            if valid and not answer.abstained:
                top = valid[0]
                panel = page.render_article(top.document, top.passage.start, top.passage.end, words)
        except Exception as error:  # noqa: BLE001 - shown as one line in the chat, details logged
            text = public_message(error)
            content, data = f'<p class="qa-error">{page.esc(text)}</p>', {"error": text}
        messages += [
            {"role": "user", "content": html.escape(question)},
            {"role": "assistant", "content": content},
        ]
        return messages, data, "", panel

    def open_article(self, cite: str, messages: list[dict] | None = None) -> str:
        """The article behind a citation link, with the cited span marked."""
        parsed = page.parse_cite(cite) if isinstance(cite, str) else None
        if parsed is None:
            return page.render_notice("无法识别这个引用。")
        doc_id, start, end = parsed
        try:
            doc = self.bot.document(doc_id)
        except QAError:
            return page.render_notice("这篇文档已不在文档库中。")
        except Exception as error:  # noqa: BLE001
            return page.render_notice(public_message(error))
        if end > len(doc.text):
            return page.render_notice("引用位置超出了文档范围，文档可能已更新，请重新提问。")
        questions = page.earlier_questions(messages or [])
        words = keywords(questions[-1]) if questions else []
        return page.render_article(doc, start, end, words)

    def ask(self, question: str, history: list[str] | None = None) -> dict:
        """API: the `qa ask --json` answer to a question; history = earlier questions."""
        with web_errors():
            return public_json(self.bot.ask(text_argument(question, "问题"), _history(history)))

    def search(self, query: str, k: int = 5) -> dict:
        """API: the top-k passages for a query, no follow-up folding; same shape as ask."""
        with web_errors():
            if not isinstance(k, int):
                raise UsageError("k 必须是整数。")
            return public_json(self.bot.ask(text_argument(query, "检索词"), [], k=max(1, k)))

    def documents(self) -> list[dict]:
        """API: the indexed documents (title, source, date, passages, doc_id)."""
        return documents(self.bot)
