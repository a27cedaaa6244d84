"""Drive the running web chat through its named API endpoints with gradio_client."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from served_app import PASSWORD, ServedApp, running_app

pytestmark = pytest.mark.slow

QUESTION = "蒙阴交警大队的党建品牌叫什么？"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "api-app") as served:
        yield served


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False, download_files=False)


def check_shape(data: dict) -> None:
    assert set(data) >= {"question", "query", "abstained", "encoder", "lead", "citations"}
    assert data["citations"]  # answered, or shown as possibly related: never nothing
    for c in data["citations"]:
        assert set(c) >= {"rank", "doc_id", "title", "source", "date", "url", "path", "text", "start", "end", "score"}
    for s in data["lead"]:
        assert set(s) == {"text", "citation"}
        assert 1 <= s["citation"] <= len(data["citations"])


def test_first_start_built_the_index_from_the_seeds(app, client):
    docs = client.predict(api_name="/documents")
    seeds = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "seeds").iterdir())
    assert len(docs) == len(seeds)
    assert all(d["passages"] > 0 and d["title"] for d in docs)
    assert (app.index_dir).is_dir()


def test_ask_returns_the_cli_json_with_a_cited_lead(client):
    data = client.predict(QUESTION, [], api_name="/ask")
    check_shape(data)
    assert not data["abstained"]
    assert "情满崮乡" in "".join(s["text"] for s in data["lead"])
    top = data["citations"][data["lead"][0]["citation"] - 1]
    assert "蒙阴" in top["title"]
    assert top["end"] - top["start"] == len(top["text"])


def test_abstains_on_a_question_the_collection_cannot_answer(client):
    data = client.predict("火星探测器什么时候发射？", [], api_name="/ask")
    check_shape(data)
    assert data["abstained"] and data["lead"] == []


def test_follow_up_folds_in_the_earlier_question(client):
    first = "泰州海陵公安分局有多少名党员？"
    data = client.predict("那巡特警大队呢？", [first], api_name="/ask")
    check_shape(data)
    assert data["query"] != data["question"]
    assert "海陵" in data["citations"][0]["title"] or "海陵" in data["citations"][0]["text"]


def test_search_returns_k_passages_in_the_same_shape(client):
    data = client.predict("交警 党建", 3, api_name="/search")
    check_shape(data)
    assert 1 <= len(data["citations"]) <= 3


def test_chat_endpoint_returns_messages_and_answer(client):
    messages, data, cleared, panel = client.predict(QUESTION, [], api_name="/chat")
    assert cleared == ""
    assert [m["role"] for m in messages] == ["user", "assistant"]
    reply = messages[1]["content"]
    reply = reply if isinstance(reply, str) else "".join(c.get("text", "") for c in reply)
    assert "情满崮乡" in reply and 'href="#qa-cite:' in reply
    check_shape(data)
    assert 'id="qa-cited"' in panel


def test_admin_actions_are_refused_without_the_password(client, tmp_path):
    doc = tmp_path / "note.txt"
    doc.write_text("测试文章\n\n这是一篇测试文章。", encoding="utf-8")
    for call in (
        lambda: client.predict([handle_file(str(doc))], "wrong", api_name="/upload"),
        lambda: client.predict("", api_name="/rebuild"),
        lambda: client.predict(None, "", api_name="/remove"),
    ):
        with pytest.raises(Exception, match="密码"):
            call()


def test_upload_rejects_unsupported_files(client, tmp_path):
    bad = tmp_path / "run.sh"
    bad.write_text("echo hi", encoding="utf-8")
    with pytest.raises(Exception, match="不受支持|Invalid file type"):
        client.predict([handle_file(str(bad))], PASSWORD, api_name="/upload")


def test_upload_then_ask_then_remove(app, client, tmp_path):
    article = tmp_path / "weird name (1).txt"
    article.write_text(
        "青石湾社区图书角开放\n\n2024-03-02 来源：青石湾社区报\n\n青石湾社区图书角于三月二日开放，藏书一千二百册，"
        "由退休教师周明远义务管理，每周二和周六下午开放。",
        encoding="utf-8",
    )
    report, listing, _ = client.predict([handle_file(str(article))], PASSWORD, api_name="/upload")
    assert "新增 1 篇" in report and "青石湾" in listing
    saved = list((app.index_dir / "uploads").iterdir())
    assert [p.name for p in saved] == ["weird_name_1.txt"]

    data = client.predict("青石湾社区图书角由谁管理？", [], api_name="/ask")
    assert not data["abstained"]
    assert "周明远" in data["citations"][0]["text"]
    doc_id = data["citations"][0]["doc_id"]

    report, listing, picker = client.predict(doc_id, PASSWORD, api_name="/remove")
    assert "删除 1 篇" in report and "青石湾" not in listing
    assert doc_id not in [value for _, value in picker["choices"]]
    assert not saved[0].exists()
    assert all(d["doc_id"] != doc_id for d in client.predict(api_name="/documents"))


def test_rebuild_is_incremental(client):
    report, listing, _ = client.predict(PASSWORD, api_name="/rebuild")
    assert "本次嵌入 0 段" in report and "未变" in report


def test_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(("超大文件。" * 1_500_000).encode("utf-8"))  # ~22 MB > QA_MAX_UPLOAD_MB=20
    with pytest.raises(Exception, match="(?i)size|超过"):
        client.predict([handle_file(str(big))], PASSWORD, api_name="/upload")


# -- hostile and unlucky uploads (issue 11, item 5) ----------------------------------------------

def call(app, api: str, data: list, headers: dict | None = None) -> tuple[int, str]:
    """A raw call of a named endpoint, the way a script that skips gradio_client's own upload would."""
    r = httpx.post(f"{app.url}gradio_api/call/{api}", json={"data": data}, headers=headers, timeout=30)
    if r.status_code != 200:
        return r.status_code, r.text
    event = r.json()["event_id"]
    return 200, httpx.get(f"{app.url}gradio_api/call/{api}/{event}", timeout=120).text


def everything_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


def test_a_file_named_by_its_server_path_or_url_is_refused_before_anything_is_copied(app, client, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("机密文件\n\n服务器上的机密：口令是紫藤花开。", encoding="utf-8")
    uploads, temp = app.index_dir / "uploads", app.temp_parent
    before_uploads, before_temp = everything_under(uploads), everything_under(temp)
    folder = next(temp.glob("qa-uploads-*"), temp)  # the app's own upload folder
    climbing = f"{folder}/{os.path.relpath(secret, folder)}"  # starts inside it, ends at the secret
    for path in (str(secret), climbing, "https://example.org/secret.md"):
        as_file = {"path": path, "meta": {"_type": "gradio.FileData"}}
        for api, data in (("upload", [[as_file], PASSWORD]), ("upload", [[as_file], "wrong"]),
                          ("chat", ["交警", [{"role": "user", "content": [as_file]}]])):
            status, text = call(app, api, data)
            assert status != 200 or "event: error" in text, (api, path, text)
            assert str(tmp_path) not in text and "secret.md" not in text  # the answer names no server path
    assert everything_under(uploads) == before_uploads
    assert everything_under(temp) == before_temp  # nothing copied, nothing fetched, not even a folder made
    assert all("机密" not in d["title"] for d in client.predict(api_name="/documents"))


def test_uploads_leave_nothing_in_the_temp_folder(app, client, tmp_path):
    doc = tmp_path / "note.txt"
    doc.write_text("测试文章\n\n这是一篇测试文章。", encoding="utf-8")
    with pytest.raises(Exception, match="密码"):
        client.predict([handle_file(str(doc))], "wrong", api_name="/upload")
    assert app.temp_files() == []
    with pytest.raises(Exception, match="不受支持"):
        client.predict([handle_file(str(doc)), handle_file(str(Path(__file__)))], PASSWORD, api_name="/upload")
    assert app.temp_files() == [] and not (app.index_dir / "uploads" / "note.txt").exists()  # all or nothing


def test_same_name_different_file_is_kept_beside_and_a_new_session_can_remove_both(app, client, tmp_path):
    first, second = tmp_path / "a b.txt", tmp_path / "a_b.txt"
    first.write_text("柳荫社区书法班\n\n柳荫社区老年书法班每周三上午上课，由书法家韩青授课。", encoding="utf-8")
    second.write_text("霞光渡口通知\n\n霞光渡口每天早上六点开船，渡口的船长姓柏。", encoding="utf-8")
    client.predict([handle_file(str(first))], PASSWORD, api_name="/upload")
    report, _, _ = client.predict([handle_file(str(second))], PASSWORD, api_name="/upload")
    assert "另存为 a_b-2.txt" in report and "新增 1 篇" in report
    assert sorted(p.name for p in (app.index_dir / "uploads").iterdir()) == ["a_b-2.txt", "a_b.txt"]
    for question, fact in (("柳荫社区书法班由谁授课？", "韩青"), ("霞光渡口的船长姓什么？", "柏")):
        assert fact in client.predict(question, [], api_name="/ask")["citations"][0]["text"]

    other = Client(app.url, verbose=False, download_files=False)  # a session that never saw these documents
    for doc in other.predict(api_name="/documents"):
        if doc["title"] in ("柳荫社区书法班", "霞光渡口通知"):
            report, listing, picker = other.predict(doc["doc_id"], PASSWORD, api_name="/remove")
            assert "删除 1 篇" in report and doc["doc_id"] not in [v for _, v in picker["choices"]]
    assert list((app.index_dir / "uploads").iterdir()) == []


def test_an_unreadable_upload_is_removed_from_uploads_and_named(app, client, tmp_path):
    good, blank = tmp_path / "good.txt", tmp_path / "blank.txt"
    good.write_text("石桥村通知\n\n石桥村的新图书室由村委会主任江海管理。", encoding="utf-8")
    blank.write_text(" \n\n ", encoding="utf-8")
    report, listing, _ = client.predict([handle_file(str(good)), handle_file(str(blank))], PASSWORD,
                                        api_name="/upload")
    assert "新增 1 篇" in report and "blank.txt" in report and "石桥村" in listing
    assert [p.name for p in (app.index_dir / "uploads").iterdir()] == ["good.txt"]
    doc_id = next(d["doc_id"] for d in client.predict(api_name="/documents") if d["title"] == "石桥村通知")
    client.predict(doc_id, PASSWORD, api_name="/remove")


def test_anonymous_uploads_are_bounded(app):
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as s:  # a declared size, no body
        s.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                  b"boundary=b\r\nContent-Length: 10000000000\r\n\r\n")
        assert s.recv(200).split()[1] == b"413"  # refused at once, before a byte is stored
    refused = None
    for batch in range(10):
        files = [("files", (f"f{batch}-{i}.txt", f"{batch}-{i}".encode())) for i in range(50)]
        # from an address that never typed the admin password: this one has, and has room of its own
        r = httpx.post(f"{app.url}gradio_api/upload", files=files, timeout=30,
                       headers={"X-Forwarded-For": "203.0.113.40"})
        if r.status_code != 200:
            refused = r
            break
    assert refused is not None and refused.status_code == 429, "anonymous uploads must stop somewhere"
    assert "稍后" in json.loads(refused.text)["detail"]
    waiting = app.temp_files()
    assert 0 < len(waiting) <= 200 + 50
    for path in waiting:  # make room for the tests after this one (the app would after 15 minutes)
        path.unlink()


# -- issue 22 ------------------------------------------------------------------------------------

def raw_upload(app, name: str, data: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{app.url}gradio_api/upload", files=[("files", (name, data))], headers=headers, timeout=30)


def test_idle_upload_connections_are_dropped_and_never_starve_the_admin(app):
    """Four sockets that send a multipart header and then nothing used to hold every upload slot, for as
    long as they stayed open; now each gets 408 after the read timeout, and the admin uploads meanwhile."""
    from qa.web.guard import MAX_UPLOADS_AT_ONCE

    patience = 30  # seconds: well past the guard's read timeout (UPLOAD_READ_TIMEOUT, 10 s)
    stranger, admin = {"X-Forwarded-For": "203.0.113.50"}, {"X-Forwarded-For": "198.51.100.20"}
    status, text = call(app, "rebuild", [PASSWORD], admin)  # this address has passed the admin password
    assert status == 200 and "event: complete" in text, text
    idle = []
    try:
        for _ in range(MAX_UPLOADS_AT_ONCE):
            s = socket.create_connection(("127.0.0.1", app.port), timeout=patience)
            s.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.50\r\n"
                      b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n"
                      b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n')
            idle.append(s)
        deadline = time.monotonic() + 10
        while raw_upload(app, "s.txt", b"x", stranger).status_code != 429:  # the idle ones hold the slots
            assert time.monotonic() < deadline, "the idle uploads never took the slots"
            time.sleep(0.1)
        started = time.monotonic()
        assert raw_upload(app, "admin.txt", b"admin", admin).status_code == 200  # not starved
        answers = [s.recv(200).split(b" ", 2)[1] for s in idle]  # each is answered, not left hanging
        assert answers == [b"408"] * MAX_UPLOADS_AT_ONCE
        assert time.monotonic() - started < patience
        assert raw_upload(app, "s.txt", b"x", stranger).status_code == 200  # the slots are free again
    finally:
        for s in idle:
            s.close()
        for path in app.temp_files():
            path.unlink()


def test_two_uploads_of_the_same_file_each_own_their_temp_copy(app, client, tmp_path):
    """gradio names a stored upload after its bytes: two uploads of one file shared a path, and the first
    admin action on it (a wrong password too) deleted the other's file."""
    data = "同名同内容\n\n白鹭洲公园的游船码头每天九点开放，管理员姓龚。".encode()
    first, second = (raw_upload(app, "same.txt", data).json()[0] for _ in range(2))
    assert first != second
    as_file = lambda path: {"path": path, "orig_name": "same.txt", "meta": {"_type": "gradio.FileData"}}  # noqa: E731
    status, text = call(app, "upload", [[as_file(first)], "wrong"], {"X-Forwarded-For": "203.0.113.60"})
    assert "event: error" in text and "密码" in json.loads(text.split("data:", 1)[1])["error"]
    status, text = call(app, "upload", [[as_file(second)], PASSWORD])
    assert "event: complete" in text and "新增 1 篇" in json.loads(text.split("data:", 1)[1])[0], text
    doc_id = next(d["doc_id"] for d in client.predict(api_name="/documents") if d["title"] == "同名同内容")
    client.predict(doc_id, PASSWORD, api_name="/remove")
    assert app.temp_files() == []


def test_a_refused_admin_call_is_one_line_in_the_log(app):
    before = len(app.log_path.read_text(encoding="utf-8", errors="replace"))
    status, text = call(app, "rebuild", ["wrong"], {"X-Forwarded-For": "192.0.2.99"})
    assert "event: error" in text
    time.sleep(1)
    added = app.log_path.read_text(encoding="utf-8", errors="replace")[before:]
    lines = [line for line in added.splitlines() if line.strip()]
    assert len(lines) == 1 and "192.0.2.99" in lines[0] and "rebuild" in lines[0], added
    assert "Traceback" not in added


def test_the_full_encoder_loads_in_the_background_and_the_first_question_is_answered(app, tmp_path):
    served = ServedApp(app.index_dir, tmp_path / "app.log", temp_parent=tmp_path / "temp").wait()
    try:
        started = time.monotonic()
        r = httpx.post(f"{served.url}gradio_api/call/ask", json={"data": [QUESTION, []]}, timeout=30)
        answer = httpx.get(f"{served.url}gradio_api/call/ask/{r.json()['event_id']}", timeout=120).text
        assert "event: complete" in answer and time.monotonic() - started < 60, answer
        assert "情满崮乡" in json.dumps(json.loads(answer.split("data:", 1)[1]), ensure_ascii=False)
        assert "Loading the full encoder for uploads in the background" in served.log()
        deadline = time.monotonic() + 120
        while "Full encoder loaded" not in served.log():
            assert time.monotonic() < deadline and served.proc.poll() is None, served.log()
            time.sleep(0.5)
    finally:
        served.stop()


def test_wrong_api_input_gets_one_clear_line_not_a_python_error(client):
    with pytest.raises(Exception) as error:
        client.predict("交警", [1, 2], api_name="/ask")
    assert "history" in str(error.value) and "object" not in str(error.value)


def test_wrong_passwords_lock_the_client_out(client):
    """Last in the file: afterwards this client's address is locked out for a while."""
    messages = []
    for _ in range(10):
        with pytest.raises(Exception) as error:
            client.predict("guess", api_name="/rebuild")
        messages.append(str(error.value))
        if "秒后再试" in messages[-1]:
            break
    assert "秒后再试" in messages[-1] and len(messages) <= 6, messages
    with pytest.raises(Exception, match="秒后再试"):
        client.predict(PASSWORD, api_name="/rebuild")  # while locked out, even the right password waits


def test_behind_a_proxy_on_this_host_wrong_passwords_lock_out_the_guesser_not_everyone(app):
    # a reverse proxy on 127.0.0.1 passes the client's address in X-Forwarded-For (uvicorn trusts it from
    # loopback only, or from FORWARDED_ALLOW_IPS); the lockout must follow that address, not the proxy's
    guesser, colleague = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "198.51.100.9"}
    def refusal(headers: dict) -> str:
        status, text = call(app, "rebuild", ["wrong"], headers)
        assert status == 200 and "event: error" in text, text
        return json.loads(text.split("data:", 1)[1])["error"]

    replies = [refusal(guesser) for _ in range(7)]
    assert replies[0] == "管理员密码不正确。" and "次数过多" in replies[-1], replies
    assert refusal(colleague) == "管理员密码不正确。"


@pytest.mark.parametrize("when", ["as soon as it says it runs", "once it answers"])
def test_sigterm_stops_the_chat_cleanly_and_removes_its_upload_folder(app, tmp_path, when):
    # a second process on the built index starts at once; a service manager stops it with SIGTERM, either
    # while gradio is still finishing its start (before its own wait loop) or while it serves
    served = ServedApp(app.index_dir, tmp_path / "app.log", temp_parent=tmp_path / "temp")
    try:
        if when == "once it answers":
            served.wait()
        else:
            for _ in range(6000):  # at most 60 s
                if "Running on" in served.log() or served.proc.poll() is not None:
                    break
                time.sleep(0.01)
        assert list(served.temp_parent.glob("qa-uploads-*"))
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=30) == 0, served.log()
    finally:
        served.stop()
    assert list(served.temp_parent.glob("qa-uploads-*")) == []
