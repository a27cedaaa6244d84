"""The OpenAI-compatible and REST API (qa/web/api.py): the real `openai` client and httpx against a served app.

Three served apps share one index: ``app`` (no keys), ``keyed`` (QA_API_KEY with two keys, and no
waiting room for API questions: QA_API_QUEUE=0) and, in the browser test, the first again. The
fast tests at the top need no server.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
import time

import httpx
import pytest

from qa.present import strings
from qa.present.markdown import escape, pieces
from qa.web.api import Gate, Keys
from qa.web.guard import Throttle
from served_app import ServedApp, running_app

QUESTION = "蒙阴交警大队的党建品牌叫什么？"
UNANSWERABLE = "火星探测器什么时候发射？"
KEYS = ("key-one-7f3a", "key-two-91bc")
slow = pytest.mark.slow


# -- without a server ----------------------------------------------------------------------------

def test_markdown_escaping_keeps_article_text_inert():
    text = "标题[x](javascript:alert(1)) <img src=x onerror=1> *粗* # 井号\n- 列表"
    out = escape(text)
    assert "\n" not in out and "\\[x\\]" in out and "\\<img" in out and "\\*粗\\*" in out and "\\#" in out


def test_stream_pieces_join_to_the_text():
    text = "第一句。第二句！\n\n来源：\n\n- [1] 甲\n- [2] 乙"
    assert "".join(pieces(text)) == text and len(pieces(text)) > 3


def test_gate_leaves_the_chat_a_slot_and_refuses_api_questions_beyond_the_queue():
    gate = Gate(slots=2, queue=0, wait=0.2)
    with gate.slot(api=True):
        with pytest.raises(Gate.Busy):  # the API's one slot is taken and nobody may wait
            with gate.slot(api=True):
                pass
        with gate.slot():  # the chat still gets the other
            pass


def test_keys_charge_only_failures_and_lock_out_a_guesser():
    clock = [0.0]
    keys = Keys(list(KEYS), Throttle(clock=lambda: clock[0]))
    for _ in range(20):  # many right keys from one address never lock it out
        keys.check(f"Bearer {KEYS[1]}", "10.0.0.1")
    statuses = []
    for _ in range(7):
        try:
            keys.check("Bearer wrong", "10.0.0.2")
        except Exception as error:  # noqa: BLE001
            statuses.append(error.status)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    with pytest.raises(Exception) as locked:  # the right key too, while locked out
        keys.check(f"Bearer {KEYS[0]}", "10.0.0.2")
    assert locked.value.status == 429
    keys.check(f"Bearer {KEYS[0]}", "10.0.0.3")  # others are not affected
    clock[0] += 400
    keys.check(f"Bearer {KEYS[0]}", "10.0.0.2")


# -- served --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "api-v1") as served:
        yield served


@pytest.fixture(scope="module")
def keyed(app, tmp_path_factory):
    base = tmp_path_factory.mktemp("api-keyed")
    served = ServedApp(app.index_dir, base / "app.log", temp_parent=base / "temp",
                       env={"QA_API_KEY": f" {KEYS[0]} , {KEYS[1]} ", "QA_API_QUEUE": "0"}).wait()
    yield served
    served.stop()


def openai_client(app, key: str = "unused", retries: int = 0):
    from openai import OpenAI

    return OpenAI(base_url=f"{app.url}v1", api_key=key, max_retries=retries, timeout=120)


def error_of(response: httpx.Response, status: int) -> dict:
    """The response is OpenAI's error object with this status, and nothing raw."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"] and error["code"]
    return error


def check_citations(citations: list[dict]) -> None:
    assert citations
    for c in citations:
        assert set(c) >= {"rank", "doc_id", "title", "source", "date", "url", "path", "text", "start", "end", "score"}
        assert c["path"] is None


@slow
def test_models_list_the_one_collection(app):
    models = openai_client(app).models.list()
    assert [m.id for m in models.data] == ["default"]
    assert openai_client(app).models.retrieve("default").id == "default"


@slow
def test_a_plain_answer_is_markdown_with_cited_sources_and_links(app):
    completion = openai_client(app).chat.completions.create(
        model="default", messages=[{"role": "user", "content": QUESTION}])
    content = completion.choices[0].message.content
    assert "情满崮乡" in content and re.search(r"。\[\d\]", content)
    assert "来源：" in content
    links = re.findall(r"^- \[(\d+)\] \[[^\]]+\]\((http://127\.0\.0\.1:\d+/\?cite=[^)]+)\)", content, re.MULTILINE)
    assert links and links[0][0] == "1"
    extra = completion.model_extra or {}
    assert extra["abstained"] is False
    check_citations(extra["citations"])
    assert "蒙阴" in extra["citations"][0]["title"]
    assert completion.choices[0].finish_reason == "stop" and completion.model == "default"


@slow
def test_the_streamed_text_joined_equals_the_plain_reply(app):
    client = openai_client(app)
    messages = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model="default", messages=messages)
    chunks = list(client.chat.completions.create(model="default", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 2  # really in pieces
    last = next(c for c in reversed(chunks) if c.choices)
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] == plain.model_extra["citations"] and last.model_extra["abstained"] is False
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(text)
    raw = httpx.post(f"{app.url}v1/chat/completions", json={"messages": messages, "stream": True}, timeout=120)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.rstrip().endswith("data: [DONE]")


@slow
def test_abstention_says_so_and_lists_what_might_be_related(app):
    client = openai_client(app)
    completion = client.chat.completions.create(model="default", messages=[{"role": "user", "content": UNANSWERABLE}])
    content = completion.choices[0].message.content
    assert completion.model_extra["abstained"] is True and content.startswith(strings.NO_ANSWER)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": UNANSWERABLE}], stream=True) if c.choices)
    assert streamed == content


@slow
def test_earlier_user_messages_are_the_history_and_unknown_fields_are_ignored(app):
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "泰州海陵公安分局有多少名党员？"},
        {"role": "assistant", "content": "……"},
        {"role": "user", "content": [{"type": "text", "text": "那巡特警大队呢？"}]},
    ]
    completion = openai_client(app).chat.completions.create(
        model="default", messages=messages, temperature=0.2, top_p=0.9, max_tokens=100, user="someone",
        extra_body={"presence_penalty": 0, "custom_field": {"x": 1}})
    content = completion.choices[0].message.content
    assert content.startswith("*按“") and "巡特警" in content  # the folded query is shown, as in the chat
    assert "海陵" in json.dumps(completion.model_extra["citations"][:2], ensure_ascii=False)


@slow
def test_rest_endpoints_and_the_schema(app):
    ask = httpx.post(f"{app.url}api/ask", json={"question": QUESTION, "k": 3, "ignored": True}, timeout=120).json()
    assert not ask["abstained"] and len(ask["citations"]) <= 3 and "情满崮乡" in json.dumps(ask, ensure_ascii=False)
    check_citations(ask["citations"])
    follow = httpx.post(f"{app.url}api/ask", json={"question": "那巡特警大队呢？",
                                                   "history": ["泰州海陵公安分局有多少名党员？"]}, timeout=120).json()
    assert follow["query"] != follow["question"]
    search = httpx.post(f"{app.url}api/search", json={"query": "交警 党建", "k": 2}, timeout=120).json()
    assert 1 <= len(search["citations"]) <= 2
    docs = httpx.get(f"{app.url}api/documents", timeout=30).json()
    assert len(docs) == 5 and all(d["passages"] > 0 and d["title"] for d in docs)
    cited = ask["citations"][0]
    doc = httpx.get(f"{app.url}api/documents/{cited['doc_id']}", timeout=30).json()
    assert doc["title"] == cited["title"] and doc["text"][cited["start"]:cited["end"]] == cited["text"]
    schema = httpx.get(f"{app.url}openapi.json", timeout=30).json()
    assert set(schema["paths"]) >= {"/v1/models", "/v1/chat/completions", "/api/ask", "/api/search",
                                    "/api/documents", "/api/documents/{doc_id}"}
    assert not any(p.startswith("/gradio_api") for p in schema["paths"])
    assert httpx.get(f"{app.url}docs", timeout=30).status_code == 200


@slow
def test_each_error_is_openai_shaped(app):
    from openai import BadRequestError

    url = f"{app.url}v1/chat/completions"
    post = lambda body, **kw: httpx.post(url, json=body, timeout=60, **kw)  # noqa: E731
    user = [{"role": "user", "content": QUESTION}]
    assert error_of(post({"model": "default"}), 400)["param"] == "messages"
    assert error_of(post({"messages": []}), 400)["code"] == "no_user_message"
    assert error_of(post({"messages": "hi"}), 400)["type"] == "invalid_request_error"
    assert error_of(post({"messages": user, "stream": "yes"}), 400)["param"] == "stream"
    assert error_of(post({"messages": [{"role": 1, "content": "x"}]}), 400)
    assert error_of(post({"model": "nope", "messages": user}), 400)["code"] == "model_not_found"
    assert error_of(httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400)
    assert error_of(httpx.post(f"{app.url}api/ask", json={"question": 5}), 400)
    assert error_of(httpx.post(f"{app.url}api/search", json={"query": "x", "k": 0}), 400)
    with pytest.raises(BadRequestError) as refused:
        openai_client(app).chat.completions.create(model="nope", messages=user)
    assert refused.value.body["code"] == "model_not_found"
    assert error_of(httpx.get(f"{app.url}v1/nothing-here"), 404)["code"] == "unknown_url"
    assert error_of(httpx.get(f"{app.url}api/documents/no-such-doc"), 404)["code"] == "document_not_found"
    long_question = [{"role": "user", "content": "交警" * 1001}]
    assert error_of(post({"messages": long_question}), 413)["code"] == "question_too_long"
    padding = [{"role": "user", "content": "问" * 1000}] * 400  # ~1.2 MB of JSON
    assert error_of(post({"messages": padding + user}), 413)["code"] == "request_too_large"
    huge = httpx.post(url, content=b'{"messages": "' + b"x" * (9 * 1024 * 1024) + b'"}',
                      headers={"content-type": "application/json"}, timeout=60)
    assert error_of(huge, 413)  # refused by the guard in front, in the same shape
    assert post({"messages": user}).status_code == 200  # and the server answers normally right after


@slow
def test_an_index_that_is_not_there_is_503_and_the_api_recovers(app):
    current = app.index_dir / "CURRENT"
    aside = current.with_name("CURRENT.aside")
    current.rename(aside)
    try:
        url = f"{app.url}v1/chat/completions"
        error = error_of(httpx.post(url, json={"messages": [{"role": "user", "content": QUESTION}]}, timeout=60), 503)
        assert error["type"] == "server_error" and str(app.index_dir) not in error["message"]
        assert error_of(httpx.get(f"{app.url}api/documents", timeout=30), 503)
    finally:
        aside.rename(current)
    assert httpx.post(url, json={"messages": [{"role": "user", "content": QUESTION}]}, timeout=60).status_code == 200


@slow
def test_keys_are_required_on_v1_and_api_when_set(keyed):
    from openai import AuthenticationError

    for path in ("v1/models", "api/documents"):
        assert error_of(httpx.get(f"{keyed.url}{path}", timeout=30), 401)["code"] == "missing_api_key"
        wrong = httpx.get(f"{keyed.url}{path}", headers={"Authorization": "Bearer nope",
                                                          "X-Forwarded-For": "198.51.100.1"}, timeout=30)
        assert error_of(wrong, 401)["code"] == "invalid_api_key"
    with pytest.raises(AuthenticationError):
        openai_client(keyed, "not-a-key").models.list()
    for key in KEYS:
        completion = openai_client(keyed, key).chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}])
        assert "情满崮乡" in completion.choices[0].message.content
    assert httpx.get(keyed.url, timeout=30).status_code == 200  # the chat page itself stays open
    assert httpx.get(f"{keyed.url}openapi.json", timeout=30).status_code == 200


@slow
def test_wrong_keys_lock_out_the_guesser_not_everyone(keyed):
    guesser, colleague = {"X-Forwarded-For": "203.0.113.77"}, {"X-Forwarded-For": "198.51.100.78"}
    url = f"{keyed.url}v1/models"
    statuses = [httpx.get(url, headers={**guesser, "Authorization": "Bearer guess"}, timeout=30).status_code
                for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    right = httpx.get(url, headers={**guesser, "Authorization": f"Bearer {KEYS[0]}"}, timeout=30)
    assert error_of(right, 429)["code"] == "too_many_failed_keys" and "retry-after" in right.headers
    assert httpx.get(url, headers={**colleague, "Authorization": f"Bearer {KEYS[0]}"}, timeout=30).status_code == 200


@slow
def test_api_questions_beyond_the_free_slots_get_429_and_the_server_recovers(keyed):
    """QA_API_QUEUE=0: API questions may not wait at all, so a burst beyond the free slots is refused."""
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    body = {"messages": [{"role": "user", "content": QUESTION}]}
    results: list[httpx.Response] = []

    def one() -> None:
        results.append(httpx.post(f"{keyed.url}v1/chat/completions", json=body, headers=headers, timeout=120))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    codes = sorted(r.status_code for r in results)
    assert len(codes) == 12 and set(codes) <= {200, 429} and 200 in codes and 429 in codes, codes
    for r in results:
        if r.status_code == 429:
            assert error_of(r, 429)["code"] == "server_busy"
    assert httpx.post(f"{keyed.url}v1/chat/completions", json=body, headers=headers, timeout=120).status_code == 200


# -- load ----------------------------------------------------------------------------------------

CLIENTS, ROUNDS = 20, 10
QUESTIONS = ["蒙阴交警大队的党建品牌叫什么？", "滨州开发区交警大队有多少名党员民警？",
             "海陵巡特警大队党总支有多少名党员？", "交警大队怎样开展党建工作？", "流动党建是什么意思？",
             "民警如何服务群众？", "火星探测器什么时候发射？", "北京今天的天气怎么样？",
             "What did the traffic police brigade do?", "车驾管业务满意度排名第几？"]


@slow
def test_twenty_openai_clients_ten_questions_each_while_the_chat_answers(app, capsys):
    from gradio_client import Client

    failures: list[str] = []
    times: list[float] = []
    chat_times: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def client(c: int) -> None:
        api = openai_client(app)
        for r in range(ROUNDS):
            question = QUESTIONS[(c + r) % len(QUESTIONS)]
            started = time.perf_counter()
            try:
                completion = api.chat.completions.create(model="default",
                                                         messages=[{"role": "user", "content": question}])
                extra = completion.model_extra or {}
                if not extra.get("abstained") and not extra.get("citations"):
                    raise AssertionError("answered without citations")
            except Exception as error:  # noqa: BLE001 - every failure is counted
                with lock:
                    failures.append(f"client {c} {question}: {error!r}")
                continue
            with lock:
                times.append(time.perf_counter() - started)

    def chat() -> None:  # a person in the web chat meanwhile
        person = Client(app.url, verbose=False, download_files=False)
        while not done.is_set() and len(chat_times) < 30:
            started = time.perf_counter()
            messages, data, _, _ = person.predict(QUESTION, [], api_name="/chat")
            assert data.get("citations"), data
            chat_times.append(time.perf_counter() - started)
            time.sleep(0.5)

    person = threading.Thread(target=chat, daemon=True)
    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(CLIENTS)]
    started = time.perf_counter()
    person.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    wall = time.perf_counter() - started
    done.set()
    person.join(120)
    with capsys.disabled():
        print(f"\nAPI load: {len(times)} replies in {wall:.1f} s ({len(times) / wall:.1f}/s), "
              f"p50 {statistics.median(times):.2f} s, max {max(times):.2f} s, failures {len(failures)}; "
              f"chat meanwhile: {len(chat_times)} replies, p50 {statistics.median(chat_times):.2f} s, "
              f"max {max(chat_times):.2f} s")
    assert not failures, failures[:5]
    assert len(times) == CLIENTS * ROUNDS
    assert len(chat_times) >= 3 and max(chat_times) < 30  # the chat kept answering, never queued behind the burst


# -- browser -------------------------------------------------------------------------------------

@slow
@pytest.mark.browser
def test_a_source_link_opens_the_article_in_the_chat(app):
    from chromium import chromium
    from playwright.sync_api import expect

    content = openai_client(app).chat.completions.create(
        model="default", messages=[{"role": "user", "content": QUESTION}]).choices[0].message.content
    title, link = re.search(r"^- \[1\] \[([^\]]+)\]\(([^)]+)\)", content, re.MULTILINE).groups()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        page.goto(link)
        article = page.locator("#qa-article")
        expect(article.locator(".qa-art-title")).to_have_text(title.replace("\\", ""), timeout=60_000)
        expect(article.locator("#qa-cited")).to_contain_text("情满崮乡")
