"""A written answer from an OpenAI-compatible LLM, checked before anyone sees it.

Why an LLM at all: the extractive lead cannot put two facts together. Why any
OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio, DashScope,
DeepSeek …): that is what users already run, and the official ``openai``
client is what those servers are built and tested against. It is imported
only when ``QA_LLM_URL`` is set, so ``qa --help`` and every run without a
model import neither it nor httpx.

Only questions the bot did not abstain on reach the model; its passages are
numbered ``[1]`` … ``[k]`` in the order of ``citations``, so ``[n]`` in the
reply is ``citations[n-1]``. The reply goes through ``verify.check``.

Failure never costs an answer: an unreachable server, a refused key, an HTTP
error, a timeout, a server that accepts and never replies, an empty or garbled
stream all become ``Generated.fallback`` (one line saying why), and the reader
gets the extractive lead. The whole call, streaming included, is bounded by
``QA_LLM_TIMEOUT``: it runs in a worker thread and is abandoned at the deadline.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

from . import verify
from .text import one_line, printable
from .types import Answer, Generated, Hit

if TYPE_CHECKING:
    from .config import Settings

MAX_TOKENS = 512  # a short answer; a runaway model stops here
SYSTEM = (
    "你是一个严谨的问答助手。只根据用户给出的编号段落回答问题，不使用段落以外的任何知识。"
    "回答要简短，用中文，每一句话后面用方括号写出它依据的段落编号，例如 [1] 或 [1][2]。"
    "数字、日期、人名、地名和机构名必须与段落中的写法一致。"
    f"如果这些段落不能回答问题，只回复：{verify.NO_ANSWER}"
)
NOT_ANSWERED = "模型认为这些段落不能回答这个问题"
NOTHING_KEPT = "模型回答的句子都无法由所引段落证实"
NOT_ASKED = "资料库中没有能回答这个问题的内容，没有问模型"
OnText = Callable[[str], None]  # receives the reply as it streams


def prompt(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The chat messages: the rules, then the passages [1] … [k] (title, source, date, text) and the question."""
    blocks = []
    for number, hit in enumerate(hits, start=1):
        d = hit.document
        head = f"[{number}] 标题：{d.title}；来源：{d.source or '不详'}；日期：{d.date or '不详'}"
        blocks.append(f"{head}\n{hit.passage.text}")
    user = "段落：\n\n" + "\n\n".join(blocks) + f"\n\n问题：{question}\n回答（每句后写 [编号]）："
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def attach(settings: Settings, answer: Answer, on_text: OnText | None = None) -> Answer:
    """``answer`` with its checked written answer when ``QA_LLM_URL`` is set and the bot did not abstain."""
    from dataclasses import replace

    if not settings.llm_url:
        return answer
    if not asks(settings, answer):  # the collection cannot answer: the model is not asked
        return replace(answer, generated=Generated(settings.llm_model or "default", "", [], NOT_ASKED))
    return replace(answer, generated=write(settings, answer.query, answer.hits, on_text))


def asks(settings: Settings, answer: Answer) -> bool:
    """Whether ``attach`` calls the model for ``answer``: QA_LLM_URL is set and the bot did not abstain."""
    return bool(settings.llm_url) and not answer.abstained and bool(answer.hits)


def write(settings: Settings, question: str, hits: Sequence[Hit], on_text: OnText | None = None) -> Generated:
    """Ask the model, check its reply, and say why when the extractive lead must be shown instead.

    ``on_text`` receives the reply as it streams (the chat shows it until the checked answer replaces it).
    """
    model = settings.llm_model or "default"
    started = time.monotonic()
    reply, failure = _stream(settings, prompt(question, hits), on_text)
    seconds = round(time.monotonic() - started, 2)
    if failure:
        return Generated(model, "", [], failure, seconds)
    if verify.says_no_answer(reply):
        return Generated(model, "", [], NOT_ANSWERED, seconds)
    sentences = verify.check(reply, question, hits)
    text = verify.shown(sentences)
    return Generated(model, text, sentences, None if text else NOTHING_KEPT, seconds)


def _stream(settings: Settings, messages: list[dict[str, str]], on_text: OnText | None) -> tuple[str, str | None]:
    """The whole reply and None, or what was received and why it failed; never longer than the timeout."""
    deadline = time.monotonic() + settings.llm_timeout
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    worker = threading.Thread(target=_call, args=(settings, messages, events), daemon=True)
    worker.start()
    parts: list[str] = []
    while True:
        try:
            kind, value = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return "".join(parts), f"模型在 {settings.llm_timeout} 秒内没有答完"
        if kind == "text":
            parts.append(value)
            if on_text is not None:
                on_text(value)
        elif kind == "error":
            return "".join(parts), value
        else:
            reply = "".join(parts)
            return reply, None if reply.strip() else "模型的回复是空的"


def _call(settings: Settings, messages: list[dict[str, str]], events: queue.Queue[tuple[str, str]]) -> None:
    """Runs in the worker thread: streams the reply into ``events``, ending with ("done", "") or ("error", why)."""
    try:
        import openai
    except ImportError:
        events.put(("error", "没有安装 openai 包（pip install openai）"))
        return
    where = one_line(settings.llm_url)
    try:
        client = openai.OpenAI(
            base_url=settings.llm_url,
            api_key=settings.llm_api_key or "none",  # local servers take any key; the client insists on one
            timeout=float(settings.llm_timeout),
            max_retries=0,  # a retry would only spend the timeout again
        )
        stream = client.chat.completions.create(
            model=settings.llm_model or "default",
            messages=cast(Any, messages),
            stream=True,
            temperature=0,
            max_tokens=MAX_TOKENS,
        )
        for chunk in stream:
            for choice in chunk.choices or []:
                delta = choice.delta.content if choice.delta is not None else None
                if delta:
                    events.put(("text", printable(delta)))
        events.put(("done", ""))
    except openai.APITimeoutError:
        events.put(("error", f"模型在 {settings.llm_timeout} 秒内没有答完"))
    except openai.APIConnectionError:
        events.put(("error", f"无法连接模型服务 {where}"))
    except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
        events.put(("error", f"模型服务拒绝了密钥（HTTP {error.status_code}，检查 QA_LLM_API_KEY）"))
    except openai.NotFoundError:
        name = one_line(settings.llm_model or "default")
        events.put(("error", f"模型服务找不到模型 {name}（HTTP 404，检查 QA_LLM_MODEL）"))
    except openai.APIStatusError as error:
        events.put(("error", f"模型服务返回错误（HTTP {error.status_code}）"))
    except Exception as error:  # noqa: BLE001 - any other failure (a garbled stream) must become a fallback, not a traceback
        events.put(("error", f"模型的回复无法读取（{one_line(type(error).__name__)}）"))


def eval_report(answers: Sequence[Answer]) -> dict[str, Any]:
    """``qa eval --llm``: how often the model's answer was shown, sentences kept and refused, fallbacks, speed."""
    asked = [a.generated for a in answers if a.generated is not None and a.generated.fallback != NOT_ASKED]
    fallbacks: dict[str, int] = {}
    for g in asked:
        if g.fallback:
            fallbacks[g.fallback] = fallbacks.get(g.fallback, 0) + 1
    sentences = [s for g in asked for s in g.sentences]
    return {
        "questions": len(answers),
        "asked": len(asked),
        "answered": sum(1 for g in asked if not g.fallback),
        "sentences_kept": sum(s.supported for s in sentences),
        "sentences_refused": sum(not s.supported for s in sentences),
        "fallbacks": fallbacks,
        "seconds_per_answer": round(sum(g.seconds for g in asked) / len(asked), 2) if asked else None,
    }


def format_eval(report: dict[str, Any]) -> str:
    lines = [
        f"[llm] asked {report['asked']} of {report['questions']}; answered {report['answered']};"
        f" sentences kept {report['sentences_kept']}, refused {report['sentences_refused']};"
        f" {report['seconds_per_answer']} s per answer"
    ]
    lines.extend(f"  fallback {n}x: {reason}" for reason, n in sorted(report["fallbacks"].items(), key=lambda x: -x[1]))
    return "\n".join(lines)
