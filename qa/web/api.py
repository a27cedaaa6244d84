"""The bot as a service: an OpenAI-compatible chat endpoint and a small REST API, beside the web chat.

``build_api`` returns the FastAPI app that ``server.serve`` mounts the chat
page on, so both share one process, one port and the ``RequestGuard``:

- ``GET /v1/models``, ``POST /v1/chat/completions`` (plain and ``stream``):
  what Open WebUI, LobeChat, Dify and the ``openai`` SDK speak. A model id
  is a knowledge base's name (``qa/kb.py``); ``default`` when left out. The last
  user message is the question, the earlier ones its history (a follow-up
  folds in as in the chat); the reply is Markdown (``present.markdown``) and
  carries ``citations`` (``qa ask --json``'s, ``path`` null) and ``abstained``.
- ``POST /api/ask``, ``POST /api/search``, ``GET /api/documents``,
  ``GET /api/documents/{doc_id}``, described by ``/openapi.json`` and ``/docs``;
  ``kb`` (a body field, or a query parameter for GET) names the base.

Every failure under ``/v1`` and ``/api`` is OpenAI's error object
``{"error": {"message", "type", "code", "param"}}`` (``APIError``), never a
traceback or an HTML page. Keys (``QA_API_KEY``, or a private base's key):
``Keys``. Every base a request names is opened through ``Bases.open(name, key)``
per request, so a private base without its key is refused with the words an
unknown name gets, and a revoked key stops working at once. Questions from
the API and from the chat share one set of answer slots (``Gate``), so the
API cannot crowd the chat out; API questions beyond the wait queue get 429.
See docs/api.md for the limits and examples.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from ..config import Settings
from ..kb import DEFAULT, KEY_PREFIX, NoSuchBase
from ..errors import IndexBusy, IndexCorrupt, IndexMismatch, IndexMissing, IndexUnavailable, ModelError, QAError
from ..errors import UsageError
from ..present.json import public_json
from ..present.markdown import article_link, pieces, render_reply
from ..text import one_line, printable
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from .guard import Throttle, hide_paths, same_secret

if TYPE_CHECKING:
    from ..kb import Base, Bases
    from ..pipeline import Bot
    from ..types import Answer

log = logging.getLogger("qa.web")

DEFAULT_MODEL = DEFAULT  # a model id is a knowledge base's name; `default` was the one id before bases existed
MAX_BODY_BYTES = 1024 * 1024  # an API request body; a long Open WebUI conversation is well under it
MAX_QUESTION_CHARS = 2000  # longer questions get 413; the pipeline searches on the first 500 (and says so)
HISTORY_TURNS = 3  # earlier user messages a follow-up may lean on, as in the chat
MAX_K = 20  # passages per answer an API caller may ask for
WAIT_SECONDS = 60.0  # an API question waits at most this long for a slot, then 429
OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
                500: "server_error", 503: "server_error"}
SERVICE_DOWN = "服务暂时不可用（索引尚未建好或无法访问），请稍后再试。"
INTERNAL = "服务器内部错误，请稍后再试；详细信息已记录在服务器日志中。"


class APIError(Exception):
    """One failure as OpenAI reports it: an HTTP status, a message, a machine-readable code."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = OPENAI_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        return {"error": {"message": self.message, "type": kind, "code": self.code, "param": self.param}}

    def response(self) -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_error(error: BaseException) -> APIError:
    """A failure of the pipeline as an APIError: the caller's fault 400, the index's 503, anything else
    500 with its details in the server log only (server paths never leave it)."""
    if isinstance(error, APIError):
        return error
    if isinstance(error, (IndexMissing, IndexUnavailable, IndexCorrupt, IndexMismatch, IndexBusy, ModelError)):
        log.warning("API: index or model unavailable: %s", one_line(str(error)))
        return APIError(503, SERVICE_DOWN, "service_unavailable", headers={"Retry-After": "10"})
    if isinstance(error, UsageError):
        return APIError(400, hide_paths(one_line(str(error))), "invalid_value")
    if isinstance(error, QAError):
        log.error("API: %s", one_line(str(error)))
    else:
        log.error("unexpected error in an API handler", exc_info=error)
    return APIError(500, INTERNAL, "internal_error")


# -- request and reply shapes (the OpenAPI schema) ----------------------------------------------

class _Lenient(BaseModel):
    """Unknown fields are ignored, as OpenAI clients expect; the known ones must have the right JSON type."""

    model_config = ConfigDict(extra="ignore", strict=True)


class ContentPart(_Lenient):
    type: str
    text: str | None = None


class Message(_Lenient):
    role: str
    content: str | list[ContentPart] | None = None


class ChatRequest(_Lenient):
    model: str | None = Field(DEFAULT_MODEL, description="the knowledge base to ask (GET /v1/models); "
                                                       "left out, null or empty: default")
    messages: list[Message] = Field(description="the last user message is the question, earlier ones its history")
    stream: bool = False
    stream_options: dict[str, Any] | None = None


KB_FIELD = "the knowledge base to ask (GET /v1/models lists those the key reads); left out: default"


class AskRequest(_Lenient):
    question: str
    kb: str | None = Field(DEFAULT, description=KB_FIELD)
    history: list[str] | None = Field(None, description="earlier questions, oldest first (a follow-up folds in)")
    k: int | None = Field(None, ge=1, le=MAX_K, description="passages in the answer (default QA_TOP_K)")


class SearchRequest(_Lenient):
    query: str
    kb: str | None = Field(DEFAULT, description=KB_FIELD)
    k: int = Field(5, ge=1, le=MAX_K)


class Model(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str = "list"
    data: list[Model]


class Citation(BaseModel):
    rank: int
    doc_id: str
    title: str
    source: str | None
    date: str | None
    url: str | None
    path: None = Field(None, description="always null over the web: server paths are not disclosed")
    heading: str | None
    text: str
    start: int
    end: int
    score: float


class AnswerJSON(BaseModel):
    """The object of `qa ask --json` (``generated`` only when an LLM is configured)."""

    model_config = ConfigDict(extra="allow")
    question: str
    query: str
    abstained: bool
    notices: list[str]
    signals: dict[str, Any]
    encoder: str
    lead: list[dict[str, Any]]
    citations: list[Citation]


class ChatMessage(BaseModel):
    role: str
    content: str


class Choice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """OpenAI's chat.completion, with ``citations`` and ``abstained`` beside it."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: dict[str, int] = Field(description="characters, not tokens")
    citations: list[Citation]
    abstained: bool


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source: str | None
    date: str | None
    url: str | None
    passages: int | None


class DocumentText(DocumentInfo):
    text: str = Field(description="the cleaned text; citation offsets (start, end) point into it")


# -- shared answer slots -------------------------------------------------------------------------

class Gate:
    """The answer slots the chat and the API share: ``slots`` questions at once (layout.CONCURRENCY).

    The chat's questions come through gradio's queue, which hands each event at
    most that many workers; wrapped in ``LimitedBot`` they also take one of
    these slots, so chat and API together never answer more than ``slots`` at
    once. API questions may hold all but one of them, so a burst of API calls
    leaves the chat a slot: a person asking waits for one answer at most. A chat
    question waits as long as it takes (gradio's queue shows its place); an API
    question is refused (``Busy``) when ``queue`` API questions already wait, or
    once it has waited ``wait`` seconds.
    """

    def __init__(self, slots: int, queue: int, wait: float = WAIT_SECONDS) -> None:
        self.slots, self.queue, self.wait = slots, queue, wait
        self._all = threading.BoundedSemaphore(slots)
        self._api = threading.BoundedSemaphore(max(1, slots - 1))
        self._lock = threading.Lock()
        self.waiting = 0  # API questions waiting for a slot

    class Busy(Exception):
        pass

    @contextmanager
    def slot(self, api: bool = False) -> Iterator[None]:
        """Hold one slot; ``api``: an API caller, turned away (``Busy``) instead of waiting long."""
        deadline = time.monotonic() + self.wait
        if api and not self._api.acquire(blocking=False):
            with self._lock:
                if self.waiting >= self.queue:
                    raise Gate.Busy
                self.waiting += 1
            try:
                got = self._api.acquire(timeout=self.wait)
            finally:
                with self._lock:
                    self.waiting -= 1
            if not got:
                raise Gate.Busy
        try:
            if not self._all.acquire(timeout=max(0.0, deadline - time.monotonic()) if api else None):
                raise Gate.Busy
            try:
                yield
            finally:
                self._all.release()
        finally:
            if api:
                self._api.release()


class LimitedBot:
    """The Bot the chat holds: the same object, but each question takes a ``Gate`` slot first."""

    def __init__(self, bot: Bot, gate: Gate) -> None:
        self._bot, self._gate = bot, gate

    def ask(self, question: str, history: Any = (), **options: Any) -> Answer:
        with self._gate.slot():
            return self._bot.ask(question, history, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bot, name)


# -- keys ----------------------------------------------------------------------------------------

class Keys:
    """Who a request is, by its ``Authorization: Bearer KEY``: a ``QA_API_KEY`` key, a private base's key,
    or nobody.

    - ``QA_API_KEY`` keys read the public bases. When any are set, a request needs one of them or a
      private base's key (401 otherwise).
    - A private base's key (``qakb-…``, ``qa kb create NAME --private``) reads that base and the
      public ones, with or without ``QA_API_KEY``: the one key a base's users need. It opens no other
      private base.
    - Without ``QA_API_KEY``, a request with no key, or with any text that is not a base's key (the
      ``openai`` SDK always sends one), reads the public bases, as before bases existed; text shaped
      like a base's key (``qakb-``) that opens none (revoked, mistyped) is a wrong key.

    The compares are constant-time over every deployment key (``same_secret``) and every private
    base (``Bases.key_holder``), with no early exit. A wrong key is charged to the client's address
    in a ``Throttle`` (5 free, then 1, 2, 4 … up to 300 s locked out, the admin password's rule);
    while locked out even a right key gets 429, so the lockout tells a guesser nothing. Only failures
    are charged, so many clients with the right key behind one address never lock each other out;
    the lockout check, compare and charge run without a pause on the event loop (the bases' records
    are read before, in a thread), so parallel guesses are each counted.
    """

    def __init__(self, keys: list[str], throttle: Throttle | None = None) -> None:
        self.keys = list(keys)
        self.throttle = throttle or Throttle()

    @staticmethod
    def given(authorization: str | None) -> str:
        """The bearer key of an ``Authorization`` header; "" when there is none."""
        scheme, _, given = (authorization or "").strip().partition(" ")
        return given.strip() if scheme.lower() == "bearer" else ""

    def check(self, authorization: str | None, host: str | None,
              key_holder: Callable[[str], str | None] = lambda key: None) -> str | None:
        """The key to open bases with (None: public bases only), or an ``APIError`` (401, 429).
        ``key_holder``: the private base a key opens, if any (``Bases.key_holder``)."""
        given = self.given(authorization)
        if not given:
            if self.keys:
                raise APIError(401, "需要 API 密钥：请求头 Authorization: Bearer <QA_API_KEY 或私有知识库的密钥>。",
                               "missing_api_key")
            return None
        wait = self.throttle.locked(host)
        if wait:
            raise APIError(429, f"API 密钥错误次数过多，请 {int(wait) + 1} 秒后再试。", "too_many_failed_keys",
                           headers={"Retry-After": str(int(wait) + 1)})
        deployment = [same_secret(given, key) for key in self.keys]  # every key compared: no early exit
        base = key_holder(given)  # every private base compared too
        if any(deployment) or base is not None:
            return given
        if not self.keys and not given.startswith(KEY_PREFIX):
            return None  # an open API: whatever text a client sends reads the public bases
        self.throttle.attempt(host)  # charged only now: right keys never count against an address
        log.warning("API: wrong key from %s", host)
        raise APIError(401, "API 密钥不正确。", "invalid_api_key")


# -- the app -------------------------------------------------------------------------------------

def build_api(bases: Bases, settings: Settings, gate: Gate) -> FastAPI:
    """The FastAPI app of /v1 and /api over the deployment's knowledge bases (the chat page is mounted on
    it by ``server.serve``)."""
    import anyio
    from fastapi import APIRouter, Query
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from fastapi.routing import APIRoute
    from starlette.exceptions import HTTPException

    keys = Keys(settings.api_keys)
    threads = anyio.CapacityLimiter(gate.slots + gate.queue + 2)  # waiting API questions never take others' threads

    async def caller(request: Request) -> str | None:
        """The request's key once ``Keys`` accepts it (None: public bases only). The bases' records are
        read first, off the event loop, once per request: a new or revoked key counts at once."""
        records = None
        if keys.given(request.headers.get("authorization")):
            records = await anyio.to_thread.run_sync(bases.registry.records)
        return keys.check(request.headers.get("authorization"), _host(request),
                          lambda key: bases.key_holder(key, records))

    class Route(APIRoute):
        """Every /v1 and /api route: the key and the body size first, every failure in OpenAI's shape."""

        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Any:
                try:
                    request.state.key = await caller(request)
                    declared = request.headers.get("content-length", "")
                    if (declared.isdigit() and int(declared) > MAX_BODY_BYTES) or (
                            request.method == "POST" and len(await request.body()) > MAX_BODY_BYTES):
                        raise APIError(413, f"请求体超过 {MAX_BODY_BYTES // 1024} KB。", "request_too_large")
                    return await handler(request)
                except RequestValidationError as error:
                    return _invalid(error).response()
                except HTTPException as error:
                    return APIError(error.status_code, str(error.detail), f"http_{error.status_code}").response()
                except Exception as error:  # noqa: BLE001 - the point: an OpenAI error object, never a traceback
                    return from_error(error).response()

            return guarded

    app = FastAPI(title="qa: 文档问答 API", version="1", docs_url="/docs", redoc_url=None,
                  description="OpenAI-compatible chat completions and a REST API over the knowledge bases "
                              "of the deployment. See docs/api.md.")
    v1 = APIRouter(prefix="/v1", route_class=Route, tags=["OpenAI-compatible"])
    rest = APIRouter(prefix="/api", route_class=Route, tags=["REST"])

    def readable(request: Request) -> list[str]:
        key = request.state.key
        return [key] if key else []

    def refusal(request: Request, name: str, param: str) -> APIError:
        """The one refusal for an unknown name, an invalid one and a private base without its key
        (``NoSuchBase``, whatever the reason): it names the bases this key reads, nothing else."""
        shown = one_line(printable(name))[:70]
        what, code = ("模型（知识库）", "model_not_found") if param == "model" else ("知识库", "kb_not_found")
        names = ", ".join(b.name for b in bases.visible(readable(request)))
        return APIError(400, f"没有名为 {shown!r} 的{what}；可用：{names}。", code, param)

    async def open_base(request: Request, name: str | None, param: str = "kb") -> Bot:
        """The Bot of base ``name`` (None or empty: ``default``) if the request's key reads it, opened per
        request through ``Bases.open`` (in a thread: it reads the base's record)."""
        def work() -> Bot:
            try:
                return bases.open(name or DEFAULT, request.state.key)
            except NoSuchBase:
                raise refusal(request, name or DEFAULT, param) from None

        return await anyio.to_thread.run_sync(work, limiter=threads)

    async def answer(bot: Bot, question: str, history: list[str], k: int | None = None) -> Answer:
        def work() -> Answer:
            with gate.slot(api=True):  # retrieval holds a slot; the model's answer (QA_LLM_URL) is written after
                found = bot.ask(question, history, k=k, written=False)
            return bot.write(found)  # bounded by QA_LLM_TIMEOUT, holding up no one else's question

        try:
            return await anyio.to_thread.run_sync(work, limiter=threads)
        except Gate.Busy:
            raise APIError(429, "正在回答的问题过多，请稍后再试。", "server_busy",
                           headers={"Retry-After": "5"}) from None

    @v1.get("/models", response_model=ModelList, summary="The knowledge bases this key can ask")
    async def list_models(request: Request) -> dict:
        visible = await anyio.to_thread.run_sync(bases.visible, readable(request))
        return {"object": "list", "data": [model_of(b) for b in visible]}

    @v1.get("/models/{model}", response_model=Model, summary="One model (knowledge base)")
    async def get_model(model: str, request: Request) -> dict:
        def work() -> dict:
            try:
                return model_of(bases.check(model, request.state.key))
            except NoSuchBase:
                raise refusal(request, model, "model") from None

        return await anyio.to_thread.run_sync(work, limiter=threads)

    @v1.post("/chat/completions", response_model=ChatCompletion, summary="Ask, OpenAI-style (plain or stream)",
             responses={200: {"content": {"text/event-stream": {}}}})
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        question, history = conversation(body.messages)
        bot = await open_base(request, body.model, "model")
        model = bot.settings.kb
        result = await answer(bot, question, history)
        base = str(request.base_url)
        content = render_reply(result, lambda hit: article_link(base, hit))
        data = public_json(result)
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        extra = {"citations": data["citations"], "abstained": result.abstained}
        usage = {"prompt_tokens": len(question) + sum(map(len, history)), "completion_tokens": len(content)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.stream:
            return JSONResponse({
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": usage, **extra,
            })
        with_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(stream(ident, created, model, content, extra, usage if with_usage else None),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @rest.post("/ask", response_model=AnswerJSON, summary="Ask a question: the `qa ask --json` object")
    async def ask(body: AskRequest, request: Request) -> dict:
        question = question_text(body.question)
        history = [h[:MAX_QUESTION_CHARS] for h in body.history or []][-HISTORY_TURNS:]
        bot = await open_base(request, body.kb)
        return public_json(await answer(bot, question, history, body.k))

    @rest.post("/search", response_model=AnswerJSON, summary="The top-k passages for a query (no follow-up)")
    async def search(body: SearchRequest, request: Request) -> dict:
        query = question_text(body.query, "query")
        bot = await open_base(request, body.kb)
        return public_json(await answer(bot, query, [], body.k))

    kb_query = Query(DEFAULT, description=KB_FIELD)

    @rest.get("/documents", response_model=list[DocumentInfo], summary="The documents of a knowledge base")
    async def documents(request: Request, kb: str = kb_query) -> list[dict]:
        bot = await open_base(request, kb)
        infos = await anyio.to_thread.run_sync(bot.documents, limiter=threads)
        return [document_info(info) for info in infos]

    @rest.get("/documents/{doc_id}", response_model=DocumentText, summary="One document: metadata and cleaned text")
    async def document(doc_id: str, request: Request, kb: str = kb_query) -> dict:
        bot = await open_base(request, kb)

        def read() -> dict:
            try:
                doc = bot.document(doc_id)
            except UsageError:
                raise APIError(404, "知识库中没有这篇文档。", "document_not_found", "doc_id") from None
            passages = next((i.passages for i in bot.documents() if i.doc_id == doc_id), None)
            return {**document_info(doc), "passages": passages, "text": doc.text}

        return await anyio.to_thread.run_sync(read, limiter=threads)

    for router in (v1, rest):
        @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
        async def unknown(request: Request) -> None:
            raise APIError(404, f"Invalid URL ({request.method} {request.url.path})", "unknown_url")

        app.include_router(router)
    return app


def model_of(base: Base) -> dict:
    """A knowledge base as OpenAI's model object; ``created``: when the base was created (0: ``default``)."""
    from datetime import datetime

    try:
        created = int(datetime.fromisoformat(base.created).timestamp()) if base.created else 0
    except ValueError:
        created = 0
    return {"id": base.name, "object": "model", "created": created, "owned_by": "qa"}


def conversation(messages: list[Message]) -> tuple[str, list[str]]:
    """The question (the last user message) and its history (the earlier user messages, last few)."""
    asked = [text for m in messages if m.role == "user" and (text := message_text(m.content)).strip()]
    if not asked:
        raise APIError(400, "messages 中没有用户消息（role 为 user 且有文字）。", "no_user_message", "messages")
    return question_text(asked[-1], "messages"), [q[:MAX_QUESTION_CHARS] for q in asked[:-1]][-HISTORY_TURNS:]


def message_text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts (images are ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.text for p in content if getattr(p, "type", None) == "text" and p.text)
    return ""


def question_text(text: str, param: str = "question") -> str:
    if not text.strip():
        raise APIError(400, "问题是空的。", "empty_question", param)
    if len(text) > MAX_QUESTION_CHARS:
        raise APIError(413, f"问题超过 {MAX_QUESTION_CHARS} 个字符。", "question_too_long", param)
    return text


def document_info(info: Any) -> dict:
    from ..clean import safe_url

    return {"doc_id": info.doc_id, "title": info.title, "source": info.source, "date": info.date,
            "url": safe_url(info.url), "passages": getattr(info, "passages", None)}


def stream(ident: str, created: int, model: str, content: str, extra: dict,
           usage: dict | None) -> Iterator[str]:
    """The reply as OpenAI's chunks: the role, the text piece by piece, the finish with ``citations`` and
    ``abstained``, the usage when asked for, then ``[DONE]``. The pieces join to the plain reply exactly."""
    import json

    def event(choices: list, **more: Any) -> str:
        chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": choices, **more}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    def choice(delta: dict, finish: Literal["stop"] | None = None) -> list:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    yield event(choice({"role": "assistant", "content": ""}))
    for piece in pieces(content):
        yield event(choice({"content": piece}))
    yield event(choice({}, "stop"), **extra)
    if usage is not None:
        yield event([], usage=usage)
    yield "data: [DONE]\n\n"


def _invalid(error: Any) -> APIError:
    """A request FastAPI could not read (bad JSON, a wrong type, a missing field) as one 400 line."""
    problems = error.errors() if hasattr(error, "errors") else []
    first = problems[0] if problems else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return APIError(400, "请求体不是有效的 JSON。", "invalid_json")
    return APIError(400, f"{where}: {message}" if where else message, "invalid_value", where or None)


def _host(request: Any) -> str | None:
    client = getattr(request, "client", None)
    return getattr(client, "host", None)
