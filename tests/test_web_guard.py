"""The web chat's defences in-process: upload checks, password throttle, public error messages.

The same behaviour is driven through a served app in test_app_api.py; here a
real Bot with the tiny model lets each rule be checked exactly and quickly.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import gradio as gr
import pytest

from qa.config import Settings
from qa.pipeline import Bot
from qa.web.admin import Admin
from qa.web.chat import Chat, documents
from qa.web.guard import Throttle, client_key, file_paths, hide_paths, inside, sweep
from qa.web.server import exposure_warning

PASSWORD = "s3cret-admin"
FACT = "柳荫社区老年书法班每周三上午上课，由书法家韩青授课。"


@pytest.fixture
def admin(tmp_path, seeds_dir, tiny_model_dir) -> Admin:
    seeds = tmp_path / "seeds"
    shutil.copytree(seeds_dir, seeds)
    settings = Settings(index_dir=tmp_path / "index", seeds_dir=seeds, model=str(tiny_model_dir),
                        admin_password=PASSWORD)
    bot = Bot(settings)
    bot.build([seeds])
    return Admin(bot, settings, temp_folder=tmp_path / "gradio-temp")


def uploaded(admin: Admin, name: str, text: str, digest: str = "h1") -> dict:
    """A file as gradio's upload route leaves it: <upload folder>/<hash>/<name>, handed over as FileData."""
    path = admin.temp_folder / digest / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return {"path": str(path), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def stored(admin: Admin) -> list[str]:
    return sorted(p.name for p in admin.uploads.iterdir()) if admin.uploads.is_dir() else []


# -- uploads -------------------------------------------------------------------------------------

def test_a_server_file_is_refused_before_anything_is_copied(admin, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("机密文件\n\n服务器上的机密：口令是紫藤花开。", encoding="utf-8")
    good = uploaded(admin, "good.txt", f"书法班\n\n{FACT}")
    escaping = str(admin.temp_folder / ".." / "secret.md")
    for files in ([str(secret)], [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}], [good, escaping]):
        for password in (PASSWORD, "wrong"):
            with pytest.raises(gr.Error) as refused:
                admin.upload(files, password, client="10.0.0.1")
            assert str(tmp_path) not in str(refused.value)
            assert stored(admin) == []
    assert all("紫藤" not in d["title"] for d in documents(admin.bot))


def test_an_upload_whose_name_climbs_out_is_saved_inside_the_uploads_folder(admin, tmp_path):
    """The browser's file name never becomes a path: whatever it climbs through, only its
    last part names the copy in uploads/ (the same bytes again are not saved twice)."""
    for digest, hostile in (("h1", "../../escaped.txt"), ("h2", "..\\..\\escaped.txt"), ("h3", "/etc/escaped.txt")):
        item = uploaded(admin, "x.txt", "攀爬的文件名\n\n" + FACT, digest)
        item["orig_name"] = hostile
        report, _, _ = admin.upload([item], PASSWORD, client="t")
        assert ("新增 1 篇" if digest == "h1" else "未变 1 篇") in report, report
    assert stored(admin) == ["escaped.txt"]
    assert [p for p in tmp_path.rglob("escaped.txt") if admin.uploads not in p.parents] == []
    assert not Path("/etc/escaped.txt").exists()


def test_a_batch_with_one_bad_file_saves_nothing(admin):
    before = {d["doc_id"] for d in documents(admin.bot)}
    batch = [uploaded(admin, "good.txt", f"书法班\n\n{FACT}", "h1"), uploaded(admin, "run.sh", "echo hi", "h2")]
    with pytest.raises(gr.Error, match="不受支持.*均未保存"):
        admin.upload(batch, PASSWORD, client="10.0.0.1")
    assert stored(admin) == []
    assert {d["doc_id"] for d in documents(admin.bot)} == before
    assert not any(admin.temp_folder.rglob("*.*")), "the temp copies are deleted whatever the outcome"


def test_a_different_file_under_the_same_safe_name_is_saved_beside_it(admin):
    admin.upload([uploaded(admin, "a b.txt", f"书法班\n\n{FACT}", "h1")], PASSWORD, client="10.0.0.1")
    other = "渡口通知\n\n霞光渡口每天早上六点开船，船长姓柏。"
    report, _, _ = admin.upload([uploaded(admin, "a_b.txt", other, "h2")], PASSWORD, client="10.0.0.1")
    assert stored(admin) == ["a_b-2.txt", "a_b.txt"]
    assert "另存为 a_b-2.txt" in report and "新增 1 篇" in report
    assert (admin.uploads / "a_b.txt").read_text(encoding="utf-8").endswith(FACT)
    again, _, _ = admin.upload([uploaded(admin, "a_b.txt", other, "h3")], PASSWORD, client="10.0.0.1")
    assert stored(admin) == ["a_b-2.txt", "a_b.txt"] and "未变 1 篇" in again  # the same bytes: nothing new


def test_an_unreadable_upload_is_removed_and_named(admin):
    batch = [uploaded(admin, "good.txt", f"书法班 2024/03 通知\n\n{FACT}", "h1"),
             uploaded(admin, "blank.txt", " \n\n ", "h2")]
    report, _, _ = admin.upload(batch, PASSWORD, client="10.0.0.1")
    assert stored(admin) == ["good.txt"]
    assert "新增 1 篇：《书法班 2024/03 通知》" in report  # a title keeps its slashes
    assert "blank.txt" in report.splitlines()[-1]


def test_a_removed_upload_leaves_the_picker_and_the_folder(admin):
    admin.upload([uploaded(admin, "good.txt", f"书法班\n\n{FACT}")], PASSWORD, client="10.0.0.1")
    doc_id = next(d["doc_id"] for d in documents(admin.bot) if d["title"] == "书法班")
    _, _, picker = admin.remove(doc_id, PASSWORD, client="10.0.0.1")
    assert stored(admin) == [] and doc_id not in [value for _, value in picker.choices]


# -- passwords -----------------------------------------------------------------------------------

def test_wrong_passwords_lock_the_client_out_with_growing_waits():
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    assert [throttle.attempt("1.2.3.4") for _ in range(Throttle.FREE)] == [0.0] * Throttle.FREE
    assert throttle.attempt("1.2.3.4") == 1.0  # locked after the FREE-th failure: even a right password waits
    assert throttle.attempt("5.6.7.8") == 0.0  # another client is not affected
    waits = []
    for _ in range(12):
        now[0] += throttle.attempt("1.2.3.4")
        assert throttle.attempt("1.2.3.4") == 0.0  # the wait is over: one more try, charged at once
        waits.append(throttle.attempt("1.2.3.4"))
    assert waits[:3] == [2.0, 4.0, 8.0] and max(waits) == Throttle.CAP
    throttle.succeeded("1.2.3.4")
    assert throttle.attempt("1.2.3.4") == 0.0
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") != client_key("2001:db8:0:1::1")


def test_the_handlers_refuse_a_locked_out_client_even_with_the_right_password(admin):
    for _ in range(Throttle.FREE):
        with pytest.raises(gr.Error, match="密码不正确"):
            admin.rebuild("guess", client="10.0.0.9")
    with pytest.raises(gr.Error, match="秒后再试"):
        admin.rebuild(PASSWORD, client="10.0.0.9")
    assert admin.check_password(PASSWORD, "10.0.0.10") is None


# -- what a web user may read --------------------------------------------------------------------

def test_errors_reach_the_web_as_one_line_without_paths(admin, caplog):
    for faiss_file in Path(admin.settings.index_dir).rglob("vectors.faiss"):
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    broken = Chat(Bot(admin.settings))
    with pytest.raises(gr.Error) as error:
        _run(broken.ask("蒙阴交警大队的党建品牌叫什么？"))
    message = error.value.message
    assert "qa build --full" in message and "/" not in message and len(message.splitlines()) == 1
    messages, data, _, _ = broken.reply("蒙阴交警大队的党建品牌叫什么？", [])
    assert data["error"] == message and str(admin.settings.index_dir) not in messages[-1]["content"]

    def fail(*_args, **_kwargs):
        raise RuntimeError("disk on /srv/private/x went away")

    chat = Chat(admin.bot)
    chat.bot.ask = fail
    with caplog.at_level(logging.ERROR, logger="qa.web"), pytest.raises(gr.Error) as error:
        _run(chat.search("交警"))
    assert "/srv" not in error.value.message and "服务器内部错误" in error.value.message
    assert "/srv/private/x" in caplog.text  # the details are logged for the operator
    with pytest.raises(gr.Error, match="history"):
        _run(Chat(Bot(admin.settings)).ask("交警", [1, 2]))  # type: ignore[list-item]


def test_hide_paths_keeps_only_the_last_component():
    assert hide_paths("Index store /srv/qa/embeddings/store.sqlite cannot be read.") == \
        "Index store store.sqlite cannot be read."
    assert hide_paths("No index yet in embeddings/v1.") == "No index yet in v1."
    assert hide_paths("见 https://example.org/a/b 。") == "见 https://example.org/a/b 。"
    assert hide_paths("跳过 报告.docx：损坏") == "跳过 报告.docx：损坏"


def test_only_files_inside_the_upload_folder_count_as_uploads(tmp_path):
    folder = tmp_path / "up"
    (folder / "h").mkdir(parents=True)
    (folder / "h" / "a.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("x")
    (folder / "h" / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert inside(folder / "h" / "a.txt", folder)
    assert not inside(folder / "h" / ".." / ".." / "secret.txt", folder)
    assert not inside(folder / "h" / "link.txt", folder)  # a link is judged by where it points
    assert not inside(folder, folder) and not inside("bad\0path", folder)
    body = {"data": [[{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}], {"path": "plain dict"}]}
    assert file_paths(body) == ["/etc/passwd"]


def test_the_upload_folder_is_swept_of_old_files(tmp_path):
    import os

    (tmp_path / "h1").mkdir()
    old, new = tmp_path / "h1" / "old.txt", tmp_path / "new.txt"
    old.write_bytes(b"x" * 10)
    new.write_bytes(b"y" * 3)
    os.utime(old, (1000, 1000))
    assert sweep(tmp_path, max_age=60) == (3, 1)
    assert not old.exists() and not (tmp_path / "h1").exists() and new.exists()


# -- exposure ------------------------------------------------------------------------------------

def test_a_non_loopback_address_is_announced_with_what_it_opens():
    for host in ("127.0.0.1", "::1", "localhost", "127.8.0.1"):
        assert exposure_warning(Settings(host=host)) is None
    shut = exposure_warning(Settings(host="0.0.0.0"))
    opened = exposure_warning(Settings(host="192.168.1.5", admin_password=PASSWORD))
    assert shut and "0.0.0.0" in shut and "ask questions" in shut and "disabled" in shut
    assert opened and "192.168.1.5" in opened and "QA_ADMIN_PASSWORD" in opened and "disabled" not in opened


# -- issue 22 ------------------------------------------------------------------------------------

def test_a_long_name_keeps_its_suffix_and_is_stored_within_255_bytes(admin):
    """The suffix is judged on the name as sent (not the shortened label), and the stored name is
    capped in bytes: 4-byte characters used to make "File name too long"."""
    for digest, name in (("h1", "长" * 117 + ".txt"), ("h2", "𠀀" * 80 + ".txt"), ("h3", "文" * 300 + ".TXT")):
        item = uploaded(admin, "short.txt", f"长名字的文档{digest}\n\n{FACT}{digest}", digest)
        item["orig_name"] = name
        report, _, _ = admin.upload([item], PASSWORD, client="10.0.0.1")
        assert "新增 1 篇" in report, report
    names = stored(admin)
    assert len(names) == 3
    for name in names:
        assert name.endswith(".txt") and len(name.encode("utf-8")) <= 255, name
    again = uploaded(admin, "short.txt", "另一篇长名字的文档\n\n霞光渡口每天早上六点开船，船长姓柏。", "h4")
    again["orig_name"] = "𠀀" * 80 + ".txt"  # a different file under the same long name: saved beside, still capped
    report, _, _ = admin.upload([again], PASSWORD, client="10.0.0.1")
    assert "另存为" in report and all(len(n.encode("utf-8")) <= 255 for n in stored(admin))


def test_the_chat_bubble_drops_control_and_bidi_characters_of_the_question(admin):
    messages, _, _, _ = Chat(admin.bot).reply("蒙阴\x1b[31m交警\u202e大队\x07的党建品牌\u2066叫什么？\x00", [])
    echoed = messages[0]["content"]
    assert echoed == "蒙阴交警大队的党建品牌叫什么？"
    assert not any(ch in echoed for ch in "\x1b\u202e\x07\u2066\x00")


def test_a_refused_admin_call_logs_one_line_without_a_traceback(admin, caplog):
    with caplog.at_level(logging.INFO, logger="qa.web"):
        for action, call in (("rebuild", lambda: admin.rebuild("wrong", client="10.0.0.7")),
                             ("remove", lambda: admin.remove("x", "wrong", client="10.0.0.7")),
                             ("upload", lambda: admin.upload([], "wrong", client="10.0.0.7"))):
            caplog.clear()
            with pytest.raises(gr.Error) as refused:
                call()
            assert refused.value.print_exception is False  # gradio would print ~30 lines for it
            assert len(caplog.records) == 1, caplog.text
            record = caplog.records[0]
            line = record.getMessage()
            assert "10.0.0.7" in line and action in line and "password" in line and "\n" not in line
            assert record.exc_info is None


def test_an_index_outage_shows_visitors_a_short_chinese_line_and_the_admin_the_details(admin, caplog):
    from qa.errors import IndexUnavailable

    def down(*_args, **_kwargs):
        raise IndexUnavailable("Milvus at http://10.1.2.3:19530 cannot be reached (timed out).",
                               "Check QA_MILVUS_URI and QA_MILVUS_TOKEN, or start the server.")

    chat = Chat(admin.bot)
    admin.bot.ask = down
    admin.bot.build = down
    with caplog.at_level(logging.INFO, logger="qa.web"):
        messages, data, _, _ = chat.reply("蒙阴交警大队的党建品牌叫什么？", [])
        with pytest.raises(gr.Error) as api_error:
            _run(chat.ask("蒙阴交警大队的党建品牌叫什么？"))
    for shown in (messages[-1]["content"], data["error"], api_error.value.message):
        assert "暂时不可用" in shown, shown
        assert "10.1.2.3" not in shown and "QA_MILVUS" not in shown and "Milvus" not in shown
    assert api_error.value.print_exception is False
    logged = [r for r in caplog.records if "10.1.2.3" in r.getMessage()]
    assert len(logged) == 2 and all(r.exc_info is None and "\n" not in r.getMessage() for r in logged)
    with pytest.raises(gr.Error, match="10.1.2.3"):  # the admin, past the password, reads what is wrong
        admin.rebuild(PASSWORD, client="10.0.0.1")


# -- the upload route: slots held only while bytes arrive (issue 22, item 1) ---------------------

def _run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


async def _reading_app(scope, receive, send):
    """Stands in for gradio's upload route: reads the whole body, then answers 200."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"[]"})


def _upload_scope(host: str) -> dict:
    return {"type": "http", "method": "POST", "path": "/gradio_api/upload", "client": (host, 5000),
            "headers": [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", b"1000")]}


async def _upload(guard, host: str, stall: bool) -> int:
    """One upload through the guard: the body arrives at once, or a first chunk and then nothing."""
    import asyncio

    sent = [False]
    never = asyncio.Event()

    async def receive() -> dict:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": b"--b\r\nContent-Disposition: form-data", "more_body": stall}
        await never.wait()
        return {"type": "http.disconnect"}

    status = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await guard(_upload_scope(host), receive, send)
    return status[0]


def test_a_stalled_upload_frees_its_slot_and_gets_408(tmp_path):
    import asyncio
    import time as clock

    from qa.web.guard import MAX_UPLOADS_AT_ONCE, RequestGuard

    guard = RequestGuard(_reading_app, tmp_path / "up", max_file_bytes=10_000, max_age=60,
                         read_timeout=0.3, deadline=5)

    async def scenario():
        stalled = [asyncio.create_task(_upload(guard, "203.0.113.5", stall=True)) for _ in range(MAX_UPLOADS_AT_ONCE)]
        await asyncio.sleep(0.05)
        busy = await _upload(guard, "203.0.113.6", stall=False)  # the slots are held while the stalled ones wait
        start = clock.monotonic()
        statuses = await asyncio.wait_for(asyncio.gather(*stalled), 5)
        return busy, statuses, clock.monotonic() - start, await _upload(guard, "203.0.113.6", stall=False)

    busy, statuses, waited, after = _run(scenario())
    assert busy == 429 and statuses == [408] * MAX_UPLOADS_AT_ONCE and waited < 2 and after == 200


def test_an_upload_that_trickles_past_the_deadline_gets_408(tmp_path):
    import asyncio

    from qa.web.guard import RequestGuard

    guard = RequestGuard(_reading_app, tmp_path / "up", max_file_bytes=10_000, max_age=60,
                         read_timeout=0.3, deadline=0.6)

    async def trickle(scope, receive, send):
        async def slowly() -> dict:
            await asyncio.sleep(0.1)  # a byte now and then: never idle for read_timeout
            return {"type": "http.request", "body": b"x", "more_body": True}

        sent = []

        async def record(message: dict) -> None:
            sent.append(message)

        await guard(scope, slowly, record)
        return sent[0]["status"]

    assert _run(asyncio.wait_for(trickle(_upload_scope("203.0.113.5"), None, None), 5)) == 408


def test_an_address_that_passed_the_admin_password_has_an_upload_slot_of_its_own(admin, tmp_path):
    import asyncio

    from qa.web.guard import MAX_UPLOADS_AT_ONCE, RequestGuard, TrustedClients

    trusted = TrustedClients()
    guard = RequestGuard(_reading_app, tmp_path / "up", max_file_bytes=10_000, max_age=60, trusted=trusted,
                         read_timeout=30, deadline=60)
    admin.trusted = trusted
    admin.rebuild(PASSWORD, client="198.51.100.20")  # the admin's address passed the password

    async def scenario():
        stalled = [asyncio.create_task(_upload(guard, "203.0.113.5", stall=True)) for _ in range(MAX_UPLOADS_AT_ONCE)]
        await asyncio.sleep(0.05)
        result = (await _upload(guard, "203.0.113.6", stall=False), await _upload(guard, "198.51.100.20", stall=False))
        for task in stalled:
            task.cancel()
        await asyncio.gather(*stalled, return_exceptions=True)
        return result

    assert _run(scenario()) == (429, 200)
