"""Knowledge bases in the web chat (qa/web/chat.py ``Library``, qa/web/admin.py ``Office``, the layout's picker).

One deployment with the tiny real model: ``default`` (the seeds), ``cmrc`` (public, three CMRC articles)
and ``audit`` (private, one article with a fact found nowhere else). The handlers are called as gradio
calls them; then a served page is driven through gradio_client and the raw HTTP API with forged names.
A private base must stay out of reach without its key: not listed, not asked, not read, not named.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import uuid
from pathlib import Path

import gradio as gr
import pytest

from qa.config import Settings
from qa.kb import Bases
from qa.present import html as page
from qa.web.admin import Office
from qa.web.chat import EMPTY, Library, NoBase, documents, same_base

ROOT = Path(__file__).resolve().parents[1]
CMRC = ROOT / "eval" / "cmrc2018-trial" / "docs"
PASSWORD = "kb-admin-secret"
SECRET_TITLE = "审计底稿"
SECRET_FACT = "柳荫社区老年书法班每周三上午上课，由书法家韩青授课。"
SECRET_DOC = f"{SECRET_TITLE}：书法班\n\n{SECRET_FACT}韩青曾在本市文化馆工作三十年。\n"
SEED_QUESTION = "蒙阴交警大队的党建品牌叫什么？"
SECRET_QUESTION = "老年班每周几上课，由谁授课？"


def run(coroutine):
    return asyncio.run(coroutine)


def last_turn(library: Library, message: str, messages: list | None, kb: str, keys: dict) -> tuple:
    async def turns():
        async for turn in library.stream(message, messages, kb, keys):
            final = turn
        return final

    return run(turns())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tiny_model_dir, seeds_dir):
    """(settings, Bases, the audit key, the secret article's doc_id), built once for the module."""
    root = tmp_path_factory.mktemp("kbweb")
    seeds = root / "seeds"
    shutil.copytree(seeds_dir, seeds)
    settings = Settings(index_dir=root / "index", seeds_dir=seeds, model=str(tiny_model_dir),
                        admin_password=PASSWORD)
    bases = Bases(settings)
    bases.server_open("default").build([seeds])
    bases.create("cmrc", "CMRC 文章")
    cmrc = root / "cmrc"
    cmrc.mkdir()
    for name in ("cmrc-trial-0001.txt", "cmrc-trial-0002.txt", "cmrc-trial-0003.txt"):
        shutil.copy(CMRC / name, cmrc / name)
    bases.server_open("cmrc").build([cmrc])
    _, key = bases.create("audit", SECRET_TITLE, private=True)
    secret = root / "secret"
    secret.mkdir()
    (secret / "shufa.txt").write_text(SECRET_DOC, encoding="utf-8")
    bases.server_open("audit").build([secret])
    doc_id = bases.server_open("audit").documents()[0].doc_id
    return settings, bases, key, doc_id


@pytest.fixture
def library(deployment) -> Library:
    return Library(deployment[1])


@pytest.fixture
def office(deployment, library, tmp_path) -> Office:
    return Office(library, deployment[0], temp_folder=tmp_path / "gradio-temp")


def secret_free(text: str, key: str) -> None:
    """Nothing of the private base: not its title, its article, its key (its name only where the caller typed it)."""
    for leak in (SECRET_TITLE, "韩青", "书法", key):
        assert leak not in text, (leak, text[:300])


# -- what a visitor sees ---------------------------------------------------------------------------------
def test_the_picker_lists_public_bases_and_private_ones_only_with_their_key(deployment, library):
    _, _, key, _ = deployment
    assert library.choices({}) == [("default", "default"), ("CMRC 文章（cmrc）", "cmrc")]
    assert library.choices({"audit": "qakb-wrong"}) == library.choices({})
    assert set(library.choices({"audit": key})) - set(library.choices({})) == {(f"{SECRET_TITLE}（audit）", "audit")}
    assert library.several() and library.opening() == "default"
    assert Library(deployment[1], opening="cmrc").opening() == "cmrc"
    assert Library(deployment[1], opening="audit").opening() == "default"  # QA_KB private: no key on a new page


def test_a_key_opens_its_base_for_the_session_and_a_wrong_one_nothing(deployment, library):
    _, _, key, _ = deployment
    held, opened = library.unlock(f"  {key} ", {"cmrc": "x"})
    assert [b.name for b in opened] == ["audit"] and held == {"cmrc": "x", "audit": key}
    for wrong in ("qakb-" + "A" * 43, "", None, key + "x", key * 10, 42):
        with pytest.raises(Exception, match="密钥") as caught:
            library.unlock(wrong, {})
        assert "audit" not in str(caught.value)


def test_without_the_key_a_private_base_is_one_message_like_a_missing_one(deployment, library):
    _, _, key, _ = deployment
    messages = {}
    for name in ("audit", "nosuch", "AUDIT", "../audit", "a" * 80):
        for keys in ({}, {"audit": "qakb-wrong"}, {"nosuch": key}):
            with pytest.raises(NoBase) as caught:
                library.base(name, keys)
            text = str(caught.value)
            shown = name[:70]
            messages.setdefault(text.replace(shown, "NAME"), []).append(name)
            assert "可选的知识库：default、cmrc。" in text
            secret_free(text, key)
    assert len(messages) == 1, messages  # the same line, whichever the reason
    assert library.base("audit", {"audit": key}).private


def test_a_private_base_is_asked_only_with_its_key_and_its_reply_names_it(deployment, library):
    _, _, key, _ = deployment
    messages, data, _, panel = last_turn(library, SECRET_QUESTION, [], "audit", {})
    assert data.keys() == {"error"} and "没有名为“audit”的知识库" in data["error"]
    for shown in (json.dumps(messages, ensure_ascii=False), panel, data["error"]):
        secret_free(shown, key)
    messages, data, _, panel = last_turn(library, SECRET_QUESTION, [], "audit", {"audit": key})
    reply = messages[-1]["content"]
    assert data["citations"] and all("韩青" in c["text"] for c in data["citations"])
    assert '<div class="qa-kb">知识库：audit · 审计底稿</div>' in reply and 'data-kb="audit"' in reply
    assert key not in json.dumps([messages, data, panel], ensure_ascii=False)


def test_each_base_answers_from_its_own_articles(deployment, library):
    _, _, key, _ = deployment
    _, seeds, _, _ = last_turn(library, SEED_QUESTION, [], "default", {"audit": key})
    _, cmrc, _, _ = last_turn(library, SEED_QUESTION, [], "cmrc", {"audit": key})
    default_ids = {d["doc_id"] for d in documents(library.open("default", {}))}
    cmrc_ids = {d["doc_id"] for d in documents(library.open("cmrc", {}))}
    assert {c["doc_id"] for c in seeds["citations"]} <= default_ids
    assert cmrc["citations"] and {c["doc_id"] for c in cmrc["citations"]} <= cmrc_ids
    assert not default_ids & cmrc_ids


def test_switching_bases_starts_a_new_conversation(deployment, library):
    first, data, _, _ = last_turn(library, "泰州海陵公安分局有多少名党员？", [], "default", {})
    follow = "那巡特警大队呢？"
    _, folded, _, _ = last_turn(library, follow, first, "default", {})
    assert folded["query"] != follow  # within a base, a follow-up leans on the earlier question
    messages, fresh, _, _ = last_turn(library, follow, first, "cmrc", {})  # a client that kept the old chat
    assert fresh["query"] == follow and [m["role"] for m in messages] == ["user", "assistant"]
    assert same_base(first, "default") == first and same_base(first, "cmrc") == []


def test_the_article_view_reads_the_picked_base_only(deployment, library):
    _, _, key, doc_id = deployment
    cite = page.cite_href(doc_id, 0, 10)
    assert "韩青" in library.open_article("audit", {"audit": key}, cite)
    for kb, keys in (("audit", {}), ("default", {"audit": key}), ("cmrc", {}), ("audit", {"audit": "wrong"})):
        shown = library.open_article(kb, keys, cite)
        assert 'id="qa-cited"' not in shown
        secret_free(shown, key)


def test_examples_come_from_the_picked_base(deployment, library):
    _, _, key, _ = deployment
    default, cmrc = library.examples("default", {}), library.examples("cmrc", {})
    assert default and cmrc and not set(default) & set(cmrc)
    assert library.examples("audit", {}) == [] and library.examples("nosuch", {}) == []
    assert any(SECRET_TITLE in q for q in library.examples("audit", {"audit": key}))


def test_the_gradio_api_serves_the_base_the_page_opens_on(deployment):
    _, bases, key, doc_id = deployment
    for opening, expected in (("default", "default"), ("cmrc", "cmrc"), ("audit", "default")):
        library = Library(bases, opening)
        ids = {d["doc_id"] for d in library.documents()}
        assert ids == {d["doc_id"] for d in documents(library.open(expected, {}))} and doc_id not in ids
        answer = run(library.ask(SECRET_QUESTION, []))
        found = run(library.search("老年班 授课", 5))
        assert {c["doc_id"] for c in answer["citations"] + found["citations"]} <= ids
        secret_free(json.dumps([answer, found], ensure_ascii=False).replace(SECRET_QUESTION, ""), key)


# -- the documents tab and the admin ---------------------------------------------------------------------
def uploaded(office: Office, name: str, text: str) -> dict:
    path = office._temp / uuid.uuid4().hex / name
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return {"path": str(path), "orig_name": name}


def test_the_documents_tab_shows_the_picked_base_and_never_a_private_one_without_its_key(deployment, office):
    _, _, key, doc_id = deployment
    table, choices = office.doc_view("cmrc", {})
    assert "知识库：cmrc" in table and len(choices) == 3
    table, choices = office.doc_view("audit", {})
    assert choices == [] and "没有名为" in table
    secret_free(table, key)
    table, choices = office.doc_view("audit", {"audit": key})
    assert SECRET_TITLE in table and [c[1] for c in choices] == [doc_id]


def test_uploads_rebuild_and_remove_act_on_the_picked_base(deployment, office, tmp_path):
    settings, bases, key, _ = deployment
    bases.create("notes")
    try:
        report, table, _ = office.upload([uploaded(office, "公告.txt", "书法班停课通知\n\n本周三书法班停课一次。")],
                                         PASSWORD, "notes", {}, client="10.0.0.1")
        assert "书法班停课通知" in table and "新增" in report or "添加" in report or "1" in report
        notes = bases.settings_of("notes")
        assert (notes.uploads_dir / "公告.txt").is_file()
        assert not (settings.uploads_dir / "公告.txt").exists()
        assert "书法班停课通知" not in office.doc_view("default", {})[0]
        office.rebuild(PASSWORD, "notes", {}, client="10.0.0.1")
        doc = bases.server_open("notes").documents()[0].doc_id
        _, table, _ = office.remove(doc, PASSWORD, "notes", {}, client="10.0.0.1")
        assert not (notes.uploads_dir / "公告.txt").exists() and "书法班停课通知" not in table
        # the private base without its key: refused before anything, and the temp copy is gone
        item = uploaded(office, "x.txt", "标题\n\n正文。")
        with pytest.raises(gr.Error, match="没有名为“audit”") as caught:
            office.upload([item], PASSWORD, "audit", {}, client="10.0.0.1")
        secret_free(caught.value.message, key)
        assert not Path(item["path"]).exists()
        with pytest.raises(gr.Error, match="没有名为"):
            office.remove("anything", PASSWORD, "audit", {"audit": "qakb-wrong"}, client="10.0.0.1")
    finally:
        bases.delete("notes")


def test_an_empty_base_says_so_in_chinese(deployment, library):
    _, bases, _, _ = deployment
    bases.create("empty")
    try:
        _, data, _, _ = last_turn(library, "什么？", [], "empty", {})
        assert data == {"error": EMPTY}
        assert library.examples("empty", {}) == [] and documents(library.open("empty", {})) == []
    finally:
        bases.delete("empty")


def test_the_admin_creates_and_deletes_bases_behind_the_password(deployment, office, library):
    _, bases, key, _ = deployment
    with pytest.raises(gr.Error, match="管理员密码不正确"):
        office.create("hr", "", False, "wrong", {}, client="10.9.9.9")
    for name, said in (("人事", "只能用字母"), ("a b", "只能用字母"), ("", "只能用字母"), ("CMRC", "已有名为 cmrc"),
                       ("Audit", "已有名为 audit")):
        with pytest.raises(gr.Error, match=said):
            office.create(name, "", False, PASSWORD, {}, client="10.0.0.1")
    report, base, held = office.create(" hr ", "人事制度", False, PASSWORD, {"audit": key}, client="10.0.0.1")
    assert base.name == "hr" and not base.private and held == {"audit": key} and "qakb-" not in report
    report, base, held = office.create("vault", "", True, PASSWORD, {}, client="10.0.0.1")
    new_key = report.split("：")[-1]
    assert base.private and new_key.startswith("qakb-") and held == {"vault": new_key}
    assert sorted(b.name for b in library.visible({})) == ["cmrc", "default", "hr"]
    assert library.base("vault", held).name == "vault"
    with pytest.raises(gr.Error, match="不能删除"):
        office.delete("default", "default", PASSWORD, {}, client="10.0.0.1")
    with pytest.raises(gr.Error, match="输入要删除的知识库名称 hr"):
        office.delete("hr", "h", PASSWORD, {}, client="10.0.0.1")
    with pytest.raises(gr.Error, match="没有名为“vault”"):  # a private base: only from a session with its key
        office.delete("vault", "vault", PASSWORD, {}, client="10.0.0.1")
    assert "已删除知识库 hr" in office.delete("hr", "hr", PASSWORD, {}, client="10.0.0.1")
    office.delete("vault", "vault", PASSWORD, held, client="10.0.0.1")
    assert sorted(b.name for b in bases.all()) == ["audit", "cmrc", "default"]


def test_one_throttle_for_every_base_and_action(deployment, office):
    for _ in range(5):
        with pytest.raises(gr.Error, match="不正确"):
            office.create("x", "", False, "wrong", {}, client="10.7.7.7")
    with pytest.raises(gr.Error, match="次数过多"):  # locked out of the documents' actions on another base too
        office.rebuild(PASSWORD, "cmrc", {}, client="10.7.7.7")
    assert office.check_password(PASSWORD, "10.0.0.2") is None


def test_a_deployment_with_default_alone_hides_the_picker_and_the_base_line(tmp_path, tiny_model_dir, seeds_dir):
    settings = Settings(index_dir=tmp_path / "index", seeds_dir=seeds_dir, model=str(tiny_model_dir))
    bases = Bases(settings)
    bases.server_open("default").build([seeds_dir])
    library = Library(bases)
    assert not library.several() and library.choices({}) == [("default", "default")]
    messages, data, _, _ = last_turn(library, SEED_QUESTION, [], "default", {})
    assert data["citations"] and 'class="qa-kb"' not in messages[-1]["content"]
    assert 'data-kb="default"' in messages[-1]["content"]


def test_every_base_shares_the_served_model(deployment):
    settings, _, key, _ = deployment
    bases = Bases(settings)
    default = bases.open("default")
    assert bases.open("default") is default
    assert bases.open("audit", key).asker.encoders is default.asker.encoders
    assert bases.open("cmrc").ask(SEED_QUESTION).hits


# -- the served page: gradio_client and the raw HTTP API -----------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(deployment):
    from qa.web.api import Gate
    from qa.web.layout import build_app

    settings, bases, _, _ = deployment
    app = build_app(bases, settings, gate=Gate(4, 8))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False,
               show_error=False)
    try:
        yield app, f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def test_gradio_client_reads_only_the_public_page(deployment, served):
    from gradio_client import Client

    _, _, key, doc_id = deployment
    _, url = served
    client = Client(url, verbose=False, download_files=False)
    assert doc_id not in {d["doc_id"] for d in client.predict(api_name="/documents")}
    answer = client.predict(SECRET_QUESTION, [], api_name="/ask")
    messages, data, _, panel = client.predict(SECRET_QUESTION, [], api_name="/chat")  # the page's base: default
    assert "知识库：default" in json.dumps(messages[-1]["content"], ensure_ascii=False)
    for shown in (answer, data):
        assert all(c["doc_id"] != doc_id for c in shown.get("citations", []))
    secret_free(json.dumps([answer, messages, data, panel], ensure_ascii=False).replace(SECRET_QUESTION, ""), key)
    info = json.dumps(client.view_api(print_info=False, return_format="dict"), ensure_ascii=False)
    assert "audit" not in info and SECRET_TITLE not in info


def raw_call(url: str, app, fn_name: str, data: list, session: str, public: bool = False) -> list[dict]:
    """One event of the page through the queue as the browser sends it (any fn, with any data); its messages.
    ``public``: the event published as an API endpoint (``/chat``), else the page's own (private) one."""
    import httpx

    fn_index = next(i for i, fn in app.fns.items()
                    if fn.name == fn_name and (fn.api_visibility == "public") == public)
    with httpx.Client(base_url=url, timeout=60) as http:
        joined = http.post("gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                            "event_data": None, "trigger_id": None})
        assert joined.status_code == 200, joined.text
        events = []
        with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("msg") == "process_completed":
                        break
    return events


def said(events: list[dict]) -> str:
    return json.dumps(events, ensure_ascii=False)


def test_a_forged_base_name_in_a_raw_gradio_call_reaches_nothing(deployment, served):
    _, _, key, doc_id = deployment
    app, url = served
    session = uuid.uuid4().hex
    # the picker's own event with a private base's name: refused in one line, the session stays on default
    events = raw_call(url, app, "switch", ["audit", "default", {"audit": key}], session)
    assert [e.get("log") for e in events if e.get("msg") == "log"] == [
        "没有名为“audit”的知识库（私有知识库要先输入它的密钥）。 可选的知识库：default、cmrc。"]
    secret_free(said(events), key)
    # the page's question with the name and a key where the state goes (the server keeps a session's state
    # itself and ignores what the client sends there)
    events = raw_call(url, app, "stream", [SECRET_QUESTION, [], "audit", {"audit": key}], session)
    assert events[-1]["msg"] == "process_completed" and "没有名为“audit”的知识库" in said(events)
    secret_free(said(events).replace(SECRET_QUESTION, ""), key)
    events = raw_call(url, app, "stream", [SECRET_QUESTION, [], "audit", {"audit": key}], session, public=True)
    assert "知识库：default" in said(events) and doc_id not in said(events)  # /chat: the session's base
    secret_free(said(events).replace(SECRET_QUESTION, ""), key)
    # the article view, asked for the private article
    events = raw_call(url, app, "open_article", ["audit", {"audit": key}, page.cite_href(doc_id, 0, 10), []],
                      session)
    assert 'id=\\"qa-cited\\"' not in said(events)
    secret_free(said(events), key)
    # a public base picked through the same event: the session's /chat questions go there
    raw_call(url, app, "switch", ["cmrc", "default", {}], session)
    events = raw_call(url, app, "stream", [SEED_QUESTION, [], None, None], session, public=True)
    assert "知识库：cmrc · CMRC 文章" in said(events)


def test_a_key_entered_in_the_page_opens_the_base_and_is_never_sent_back(deployment, served):
    _, _, key, _ = deployment
    app, url = served
    session = uuid.uuid4().hex
    events = raw_call(url, app, "enter_key", [key, {}], session)
    assert events[-1].get("success"), said(events)
    assert key not in said(events) and SECRET_TITLE in said(events)  # the picker lists it; the key stays here
    for public in (False, True):
        events = raw_call(url, app, "stream", [SECRET_QUESTION, [], "audit", None], session, public)
        assert "知识库：audit" in said(events) and "韩青" in said(events) and key not in said(events)
    other = uuid.uuid4().hex  # another session holds no key
    events = raw_call(url, app, "stream", [SECRET_QUESTION, [], "audit", None], other)
    assert "没有名为“audit”的知识库" in said(events) and "韩青" not in said(events)


# -- in a real browser -----------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_the_picker_in_a_browser(deployment, tmp_path, tiny_model_dir):
    """Pick cmrc, ask, read its name in the reply; enter audit's key and find audit picked and answering.

    Also writes docs/kb-picker.png: the picker on a 390 px wide phone, its list open after the key."""
    from playwright.sync_api import expect

    from chromium import chromium
    from served_app import ServedApp

    settings, bases, key, _ = deployment
    index = tmp_path / "index"
    shutil.copytree(settings.index_dir, index)  # the module's three bases, served by `python app.py`
    app = ServedApp(index, tmp_path / "app.log", env={"QA_MODEL": str(tiny_model_dir)}).wait()
    try:
        with chromium() as browser:
            for width, height in ((1280, 860), (390, 844)):
                context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                                              device_scale_factor=2 if width < 500 else 1)
                page = context.new_page()
                page.goto(app.url)
                page.wait_for_selector("#qa-question textarea", timeout=60_000)
                picker = page.locator("#qa-kb input")
                expect(picker).to_have_value("default")
                picker.click()
                listed = [t.split("\n")[-1] for t in page.get_by_role("option").all_inner_texts()]  # "✓\n": picked
                assert listed == ["default", "CMRC 文章（cmrc）"]
                page.get_by_role("option", name="CMRC 文章（cmrc）").click()
                expect(picker).to_have_value("CMRC 文章（cmrc）")
                expect(page.locator("#qa-chat")).to_contain_text(Library(bases).examples("cmrc", {})[0])  # its examples
                page.fill("#qa-question textarea", "范廷颂是什么时候被任为主教的？")
                page.keyboard.press("Enter")
                reply = page.locator("#qa-chat .qa-reply")
                expect(reply).to_have_count(1, timeout=60_000)
                expect(reply.locator(".qa-kb")).to_have_text("知识库：cmrc · CMRC 文章")
                page.fill("#qa-key input", key)
                page.keyboard.press("Enter")
                expect(picker).to_have_value(f"{SECRET_TITLE}（audit）", timeout=30_000)
                expect(reply).to_have_count(0)  # a new conversation on the new base
                expect(page.locator("#qa-key input")).to_have_value("")
                page.fill("#qa-question textarea", SECRET_QUESTION)
                page.keyboard.press("Enter")
                expect(reply).to_have_count(1, timeout=60_000)
                expect(reply.locator(".qa-kb")).to_have_text(f"知识库：audit · {SECRET_TITLE}")
                expect(reply.locator(".qa-src").first).to_contain_text("韩青")
                if width < 500:
                    for close in page.locator(".toast-close").all():  # the "opened" notice, over the header
                        close.click()
                    expect(page.locator(".toast-item")).to_have_count(0)
                    page.evaluate("window.scrollTo(0, 0)")
                    picker.click()
                    expect(page.get_by_role("option")).to_have_count(3)
                    page.wait_for_timeout(500)  # the list fades in
                    page.screenshot(path=str(ROOT / "docs" / "kb-picker.png"),
                                    clip={"x": 0, "y": 0, "width": width, "height": 480})
                context.close()
    finally:
        app.stop()
