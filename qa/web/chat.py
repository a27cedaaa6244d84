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

import asyncio
import html
import logging
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

from .. import generate
from ..present import html as page
from ..present import is_valid
from ..present.json import public_json
from ..errors import IndexMissing, IndexUnavailable, QAError, UsageError
from ..kb import DEFAULT, Base, Bases, NoSuchBase
from ..segment import keywords
from ..text import one_line, printable
from ..types import Answer
from .guard import hide_paths

if TYPE_CHECKING:
    from ..pipeline import Bot

GENERIC_ERROR = "服务器内部错误，请稍后再试；详细信息已记录在服务器日志中。"
UNAVAILABLE = "服务暂时不可用，请稍后再试。"
EMPTY = "这个知识库还没有文档：请管理员在“文档”页上传。"
Turn = tuple[list[dict], dict, str, str]  # one chat update: messages, answer JSON, cleared input, article panel
STREAM_EVERY = 0.15  # seconds between two updates of the reply while the model writes

log = logging.getLogger("qa.web")


def public_message(error: BaseException, detailed: bool = False) -> str:
    """What a web user may read about a failure: a QAError's own line without server paths,
    else a generic line (the details go to the server log). An index outage is told to
    visitors as UNAVAILABLE; ``detailed`` (the admin, past the password) reads it whole."""
    if isinstance(error, IndexUnavailable) and not detailed:
        log.warning("index unavailable: %s", one_line(str(error)))
        return UNAVAILABLE
    if isinstance(error, IndexMissing) and not detailed:  # a new knowledge base before its first upload
        return EMPTY
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


class Slots:
    """The retrieval slots of one page: ``n`` questions retrieved at once, whichever knowledge base they ask.

    An anyio ``CapacityLimiter`` belongs to one event loop; a new loop (tests run each call in its own) gets
    a new one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._current: tuple[Any, Any] | None = None  # (event loop, its CapacityLimiter)

    def limiter(self) -> Any:
        import anyio

        loop = asyncio.get_running_loop()
        if self._current is None or self._current[0] is not loop:
            self._current = (loop, anyio.CapacityLimiter(self.n))
        return self._current[1]


class Chat:
    """The chat's event handlers and the read-only API, bound to one Bot; plain methods so tests can call them.

    **Concurrency, and why a slow model holds up no one else.** gradio's queue
    counts a generator handler as running until its last yield, and groups
    events by handler object: the Enter key, the send button and the examples
    were three groups of ``layout.CONCURRENCY`` each, and a streaming reply
    would hold its slot for the whole model call (up to ``QA_LLM_TIMEOUT``),
    so four slow answers would have stalled every other question. So the chat
    and API handlers are coroutines that gradio runs with no limit of its own
    (``concurrency_limit=None`` in the layout), and the limit is kept here, on
    what costs CPU: retrieval runs in a worker thread holding one of
    ``concurrency`` slots (one ``CapacityLimiter`` shared by the chat, ``/ask``
    and ``/search``), released before the model is asked. The model call runs
    on a thread of its own (not gradio's pool of 40, which it would otherwise
    drain), ends within ``QA_LLM_TIMEOUT`` however the server behaves
    (``generate._stream``), and is awaited on the event loop. A waiting model
    thus holds neither a retrieval slot nor a pool thread: other people's
    questions are retrieved and sent to the model without waiting for it, and
    each person waits for their own model call at most the timeout. Model
    calls are not capped in number: each is two idle threads for at most the
    timeout, and they can only start as fast as retrieval lets questions through.
    """

    def __init__(self, bot: Bot, concurrency: int = 4, slots: Slots | None = None,
                 base: page.BaseLine | None = None) -> None:
        """``slots``: retrieval slots shared with other Chats (one per knowledge base and request, ``Library``);
        ``base``: the knowledge base named in each reply."""
        self.bot = bot
        self.concurrency = concurrency
        self.slots = slots or Slots(concurrency)
        self.base = base

    def reply(self, message: str, messages: list[dict] | None) -> Turn:
        """One chat turn to its end, without streaming: (messages, answer JSON, cleared input, article panel)."""

        async def last() -> Turn:
            async for turn in self.stream(message, messages):
                final = turn
            return final

        return asyncio.run(last())

    async def stream(self, message: str, messages: list[dict] | None) -> AsyncIterator[Turn]:
        """One chat turn as the chat shows it: (messages, answer JSON, cleared input, article panel), yielded
        first with the passages and the model's text as it arrives, last with the checked answer."""
        messages = list(messages or [])
        question = printable(message).strip() if isinstance(message, str) else ""  # echoed: no control codes
        if not question:
            yield messages, {}, "", page.render_notice("请输入问题。")
            return
        messages.append({"role": "user", "content": html.escape(question)})
        base = self.base
        panel = page.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。")
        try:
            answer = await self._retrieve(question, page.earlier_questions(messages[:-1]))
            words = keywords(answer.query)
            valid = [h for h in answer.hits if is_valid(h)]
            if valid and not answer.abstained:
                top = valid[0]
                panel = page.render_article(top.document, top.passage.start, top.passage.end, words)
            if generate.asks(self.bot.settings, answer):  # the passages at once, then the model's text as it comes
                model, text, shown_at = self.bot.settings.llm_model or "default", "", time.monotonic()
                data = public_json(answer)  # the retrieval's JSON until the written answer is in
                writing = page.render_writing(answer, text, model, words, base)
                yield [*messages, {"role": "assistant", "content": writing}], data, "", panel
                async for item in self._write(answer):
                    if isinstance(item, Answer):
                        answer = item
                        continue
                    text += item
                    if time.monotonic() - shown_at >= STREAM_EVERY:  # at most a few updates a second
                        shown_at, writing = time.monotonic(), page.render_writing(answer, text, model, words, base)
                        yield [*messages, {"role": "assistant", "content": writing}], data, "", panel
            else:
                answer = self.bot.write(answer)  # no model: at most the NOT_ASKED record, at once
            content, data = page.render_answer(answer, words, base), public_json(answer)
        except Exception as error:  # noqa: BLE001 - shown as one line in the chat, details logged
            text = public_message(error)
            content, data = f'<p class="qa-error">{page.esc(text)}</p>', {"error": text}
        yield [*messages, {"role": "assistant", "content": content}], data, "", panel

    async def _retrieve(self, question: str, history: list[str], **options: Any) -> Answer:
        """Retrieval and abstention, without the model, in a worker thread holding one of the slots."""
        import anyio

        call = partial(self.bot.ask, question, history, written=False, **options)
        return await anyio.to_thread.run_sync(call, limiter=self.slots.limiter())

    async def _write(self, answer: Answer) -> AsyncIterator[str | Answer]:
        """The model's text as it arrives, then ``answer`` with its checked written answer.

        The call runs on a thread of its own, bounded by QA_LLM_TIMEOUT (see the class docstring).
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[str | Answer | BaseException] = asyncio.Queue()

        def put(item: str | Answer | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is gone (the server stopped): nobody is waiting
                pass

        def run() -> None:
            try:
                put(self.bot.write(answer, on_text=put))
            except BaseException as error:  # noqa: BLE001 - re-raised in the handler, which shows one line
                put(error)

        threading.Thread(target=run, name="qa-llm", daemon=True).start()
        while True:
            item = await events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Answer):
                return

    async def _answer(self, question: str, history: list[str], **options: Any) -> Answer:
        """The whole answer, written part included, for the API."""
        answer = await self._retrieve(question, history, **options)
        async for item in self._write(answer):
            if isinstance(item, Answer):
                answer = item
        return answer

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

    async def ask(self, question: str, history: list[str] | None = None) -> dict:
        """API: the `qa ask --json` answer to a question; history = earlier questions."""
        with web_errors():
            return public_json(await self._answer(text_argument(question, "问题"), _history(history)))

    async def search(self, query: str, k: int = 5) -> dict:
        """API: the top-k passages for a query, no follow-up folding and no model; same shape as ask."""
        with web_errors():
            if not isinstance(k, int):
                raise UsageError("k 必须是整数。")
            return public_json(await self._retrieve(text_argument(query, "检索词"), [], k=max(1, k)))

    def documents(self) -> list[dict]:
        """API: the indexed documents (title, source, date, passages, doc_id)."""
        return documents(self.bot)


# -- knowledge bases -------------------------------------------------------------------------------

MAX_KEY_CHARS = 200  # a key is 48 characters; longer input is not hashed


class NoBase(UsageError):
    """A base this visitor may not read: unknown, invalid, or private without its key (one message for all)."""


def session_keys(keys: Any) -> dict[str, str]:
    """The keys a session holds (name -> key), whatever the state holds: only text, nothing else."""
    if not isinstance(keys, dict):
        return {}
    return {n: k for n, k in keys.items() if isinstance(n, str) and isinstance(k, str) and k}


def base_label(base: Base) -> str:
    """A base as the picker lists it: ``title（name）``, or the name alone."""
    return f"{base.title}（{base.name}）" if base.title else base.name


class Library:
    """The knowledge bases as a web visitor reaches them: the chat of whichever base the visitor picked.

    Every handler names a base (``kb``: the page's picked base, kept in a gr.State, or an API argument)
    and brings the keys its session holds (``keys``: name -> key, a gr.State, which gradio keeps on the
    server and never sends to the browser). Each call opens the base again through ``Bases.open(kb,
    keys.get(kb))``: a name without its key, a replaced key or a deleted base open nothing, whatever the
    client sends. A base that cannot be opened is ``NoBase``, one Chinese line naming only the bases this
    session may read, the same whether the name is unknown, invalid or private.

    ``wrap`` turns a base's Bot into the one the chat holds (``LimitedBot``, the answer slots shared with
    the API); ``opening`` is the base the page opens on when a visitor without keys may read it.
    """

    def __init__(self, bases: Bases, opening: str = DEFAULT, wrap: Callable[[Bot], Bot] | None = None,
                 concurrency: int = 4) -> None:
        self.bases = bases
        self.wanted = opening
        self.wrap = wrap or (lambda bot: bot)
        self.slots = Slots(concurrency)

    def opening(self) -> str:
        """``QA_KB`` when a visitor without a key may read it, else ``default``."""
        try:
            return self.bases.check(self.wanted).name
        except NoSuchBase:
            return DEFAULT

    def several(self) -> bool:
        """Whether the page shows the picker: the deployment has a base besides ``default``, public or private.

        With ``default`` alone there is nothing to pick and no key could open anything, so the page looks
        as it did before bases existed (and no reply names its base). Once any other base exists the picker
        and its key field are shown, with ``default`` alone in the list if every other base is private: a
        visitor can then tell that keys are taken here, never which bases or how many."""
        return len(self.bases.all()) > 1

    def visible(self, keys: Any) -> list[Base]:
        """The public bases, and the private ones whose key the session holds under their name."""
        held = session_keys(keys)
        return [b for b in self.bases.visible(held.values()) if not b.private or b.name in held]

    def choices(self, keys: Any) -> list[tuple[str, str]]:
        """The picker's choices (label, name): the public bases, then the private ones this session has keys to."""
        return [(base_label(b), b.name) for b in self.visible(keys)]

    def base(self, kb: Any, keys: Any) -> Base:
        """Base ``kb`` if this session may read it, else ``NoBase``."""
        try:
            return self.bases.check(kb, session_keys(keys).get(kb) if isinstance(kb, str) else None)
        except NoSuchBase:
            shown = one_line(printable(str(kb)))[:70]
            names = "、".join(b.name for b in self.visible(keys))
            raise NoBase(f"没有名为“{shown}”的知识库（私有知识库要先输入它的密钥）。",
                         f"可选的知识库：{names}。") from None

    def open(self, kb: Any, keys: Any) -> Bot:
        """The Bot of base ``kb`` (wrapped), if this session may read it; else ``NoBase``."""
        return self._open(kb, keys)[1]

    def chat(self, kb: Any, keys: Any) -> Chat:
        """The chat of base ``kb``, naming it in each reply, if this session may read it; else ``NoBase``."""
        base, bot = self._open(kb, keys)
        return Chat(bot, self.slots.n, self.slots, page.BaseLine(base.name, base.title, shown=self.several()))

    def _open(self, kb: Any, keys: Any) -> tuple[Base, Bot]:
        base = self.base(kb, keys)
        try:
            bot = self.bases.open(base.name, session_keys(keys).get(base.name))
        except NoSuchBase:  # deleted, or its key replaced, since the check above
            self.base(kb, keys)
            raise
        return base, self.wrap(bot)

    def unlock(self, key: Any, keys: Any) -> tuple[dict[str, str], list[Base]]:
        """The session's keys with ``key`` added, and the private bases it opens; ``UsageError`` when none.

        Guessing is hopeless (32 random bytes), so wrong keys are not throttled; none is logged."""
        key = key.strip() if isinstance(key, str) else ""
        if not key:
            raise UsageError("请先输入密钥。")
        opened = [b for b in self.bases.visible([key]) if b.private] if len(key) <= MAX_KEY_CHARS else []
        if not opened:
            raise UsageError("这个密钥打不开任何知识库：密钥不对，或已被更换。")
        return {**session_keys(keys), **{b.name: key for b in opened}}, opened

    async def stream(self, message: str, messages: list[dict] | None, kb: Any, keys: Any) -> AsyncIterator[Turn]:
        """One chat turn (``Chat.stream``) asked of base ``kb``. The history is the turns since the last reply
        of another base: switching bases starts a new conversation even if a client keeps the old one."""
        messages = same_base(list(messages or []), kb)
        try:
            chat = self.chat(kb, keys)
        except Exception as error:  # noqa: BLE001 - one line in the chat, like every failure of a turn
            text = public_message(error)
            question = printable(message).strip() if isinstance(message, str) else ""
            shown = [*messages, {"role": "user", "content": html.escape(question)}] if question else messages
            yield [*shown, {"role": "assistant", "content": f'<p class="qa-error">{page.esc(text)}</p>'}], \
                {"error": text}, "", page.render_notice(text)
            return
        async for turn in chat.stream(message, messages):
            yield turn

    def open_article(self, kb: Any, keys: Any, cite: str, messages: list[dict] | None = None) -> str:
        """The article behind a citation, read from base ``kb`` only."""
        try:
            chat = self.chat(kb, keys)
        except QAError as error:
            return page.render_notice(public_message(error))
        return chat.open_article(cite, messages)

    def examples(self, kb: Any, keys: Any) -> list[str]:
        """Example questions about base ``kb``'s own articles (none for a base this session may not read)."""
        try:
            bot = self.open(kb, keys)
        except QAError:
            return []
        return page.example_questions([d["title"] for d in documents(bot)])

    # -- the gradio API (/ask, /search, /documents): the base the page opens on, as before bases existed --
    # (their arguments stay as they were: raw HTTP callers must send every one, so none could be added)
    async def ask(self, question: str, history: list[str] | None = None) -> dict:
        """API: the `qa ask --json` answer to a question; history = earlier questions."""
        with web_errors():
            return await self.chat(self.opening(), {}).ask(question, history)

    async def search(self, query: str, k: int = 5) -> dict:
        """API: the top-k passages for a query, no follow-up folding and no model; same shape as ask."""
        with web_errors():
            return await self.chat(self.opening(), {}).search(query, k)

    def documents(self) -> list[dict]:
        """API: the indexed documents (title, source, date, passages, doc_id)."""
        with web_errors():
            return documents(self.open(self.opening(), {}))


def same_base(messages: list[dict], kb: Any) -> list[dict]:
    """``messages`` from after the last reply that another knowledge base gave (all of them if none did)."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "assistant":
            came_from = page.reply_base(message)
            if came_from is not None and came_from != kb:
                return messages[i + 1:]
    return messages
