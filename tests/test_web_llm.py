"""The web chat with a written answer: a served app whose QA_LLM_URL is the scripted server (``llm_server.py``).

The chat streams the model's text, then shows the checked answer with ``[n]``
links to the article; a failing model gives today's extractive reply with one
notice; ``/ask`` carries ``generated``; and model calls that hang hold up
neither retrieval nor other people's model calls. The tests run in file order
(the last one releases the hanging requests for good).
"""

from __future__ import annotations

import html
import re
import time

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from chromium import chromium
from llm_server import scripted_server
from qa.present.html import message_text, parse_cite
from qa.web.layout import CONCURRENCY
from served_app import running_app

pytestmark = pytest.mark.slow

TIMEOUT = 20  # QA_LLM_TIMEOUT of the app: long, so a hanging model is seen to hold up no one else
QUESTION = "蒙阴交警大队的党建品牌叫什么？"
INVENTED = "该品牌在1990年获得联合国表彰"  # a claim the articles never make: the check refuses it


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The scripted model server, and the app pointed at it."""
    with scripted_server() as server:
        env = {"QA_LLM_URL": server.url, "QA_LLM_MODEL": "m", "QA_LLM_TIMEOUT": str(TIMEOUT)}
        with running_app(tmp_path_factory, "llm-app", env=env) as app:
            yield server, app


@pytest.fixture(scope="module")
def llm(served):
    return served[0]


@pytest.fixture(scope="module")
def app(served):
    return served[1]


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def faithful(client) -> str:
    """A sentence of the top passage that answers QUESTION: the model's faithful sentence, citing [1]."""
    top = client.predict(QUESTION, 5, api_name="/search")["citations"][0]["text"]
    return next(s for s in re.split(r"(?<=。)", top) if "情满崮乡" in s).strip()


def plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def links(fragment: str) -> list[tuple[int, tuple[str, int, int] | None]]:
    """Every citation link of an HTML fragment: its number and where it leads."""
    return [(int(n), parse_cite(html.unescape(href)))
            for href, n in re.findall(r'<a class="qa-cite" href="([^"]+)"[^>]*>\[(\d+)\]</a>', fragment)]


def chat(client: Client, question: str) -> tuple[list[tuple], tuple]:
    """Every update the chat sent for one question, and the last."""
    job = client.submit(question, [], api_name="/chat")
    final = job.result(timeout=120)
    return job.outputs(), final


def test_the_chat_streams_the_model_then_shows_the_checked_answer_with_links(llm, client, faithful):
    llm.mode, llm.pause = "slow", 0.15
    llm.reply = f"{faithful.rstrip('。')}[1]。{INVENTED}[1]。"
    updates, (messages, data, box, panel) = chat(client, QUESTION)
    writing = [message_text(u[0][-1]) for u in updates if "qa-writing" in message_text(u[0][-1])]
    assert len(writing) >= 2, "the model's text was not streamed"
    assert len(plain(writing[-1])) > len(plain(writing[0]))  # it grew as it arrived
    reply = message_text(messages[-1])
    answer = reply[reply.index("qa-written"):reply.index("来源：")]
    assert faithful.rstrip("。") in plain(answer) and "1990" not in reply  # the invented sentence is not shown
    assert "另有 1 句" in plain(answer) and "qa-notice" not in reply
    cited = links(answer)
    assert cited and all(n == 1 for n, _ in cited)
    top = data["citations"][0]
    assert cited[0][1] == (top["doc_id"], top["start"], top["end"])  # [1] opens citations[0], as the lead's did
    assert reply.count('class="qa-src"') == len(data["citations"])  # then the passages, as today
    assert data["generated"]["fallback"] is None and data["generated"]["text"].startswith(faithful.rstrip("。"))
    assert box == "" and "qa-cited" in panel


def test_the_api_answer_carries_generated_and_search_does_not_ask_the_model(llm, client, faithful):
    llm.mode, llm.reply = "ok", f"{faithful.rstrip('。')}[1]。"
    asked = len(llm.requests)
    data = client.predict(QUESTION, [], api_name="/ask")
    generated = data["generated"]
    assert generated["model"] == "m" and generated["fallback"] is None
    assert generated["sentences"][0]["supported"] and generated["sentences"][0]["citations"] == [1]
    assert "情满崮乡" in "".join(s["text"] for s in data["lead"])  # lead and citations stay as they are
    assert "generated" not in client.predict(QUESTION, 3, api_name="/search")
    assert len(llm.requests) == asked + 1


def test_a_failing_model_gives_the_extractive_reply_with_one_notice(llm, client):
    llm.mode = "500"
    _, (messages, data, _, _) = chat(client, QUESTION)
    reply = message_text(messages[-1])
    assert reply.count('class="qa-notice"') == 1 and "显示的是摘录的答案：模型服务返回错误（HTTP 500）" in plain(reply)
    lead = reply[reply.index('class="qa-lead"'):reply.index("来源：")]
    assert "情满崮乡" in plain(lead) and links(lead) and "qa-written" not in reply
    assert data["generated"]["fallback"] == "模型服务返回错误（HTTP 500）"


@pytest.mark.browser
def test_a_citation_of_the_written_answer_opens_the_article_on_that_passage(app, llm, faithful):
    llm.mode, llm.reply = "ok", f"{faithful.rstrip('。')}[1]。"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        page.goto(app.url)
        page.fill("#qa-question textarea", QUESTION)
        page.keyboard.press("Enter")
        written = page.locator("#qa-chat .qa-reply .qa-written")
        expect(written).to_contain_text("情满崮乡", timeout=60_000)
        panel = page.locator("#qa-article")
        page.locator("#qa-chat .qa-reply .qa-src a.qa-cite").last.click()  # first another passage, then [1]
        expect(panel.locator("#qa-cited")).not_to_contain_text(faithful.rstrip("。"))
        written.locator("a.qa-cite").first.click()
        cited = panel.locator("#qa-cited")
        expect(cited).to_contain_text(faithful.rstrip("。"))
        expect(cited).to_be_in_viewport()
        expect(panel.locator(".qa-art-title")).to_contain_text("蒙阴")


def test_a_hanging_model_holds_up_neither_retrieval_nor_other_model_calls(llm, client):
    llm.mode, llm.reply, llm.hang_if = "ok", "资料中没有找到答案。", QUESTION
    asked = len(llm.requests)
    hanging = [client.submit(QUESTION, [], api_name="/chat") for _ in range(CONCURRENCY + 2)]
    deadline = time.monotonic() + 60
    while len(llm.requests) < asked + len(hanging) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(llm.requests) == asked + len(hanging), "the questions did not all reach the model at once"
    started = time.monotonic()
    other = client.predict("滨州开发区交警大队有多少名党员民警？", [], api_name="/ask")  # retrieval and a model call
    searched = client.predict("交警 党建", 3, api_name="/search")
    waited = time.monotonic() - started
    assert other["generated"]["fallback"] == "模型认为这些段落不能回答这个问题" and searched["citations"]
    assert waited < TIMEOUT / 2 and not any(job.done() for job in hanging), waited
    llm.release.set()  # the hanging requests end; each becomes the extractive reply with its notice
    for job in hanging:
        messages, data, _, _ = job.result(timeout=30)
        assert "显示的是摘录的答案" in plain(message_text(messages[-1])) and data["generated"]["fallback"]
