"""The web chat in a real headless Chromium (Debian's package, driven by Playwright).

Fails, not skips, when /usr/bin/chromium is missing (``chromium.py``). One app
process serves every test in this file; the tests run in file order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chromium import chromium
from served_app import PASSWORD, ROOT, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = ROOT / "test-output"
QUESTION = "蒙阴交警大队的党建品牌叫什么？"
XSS = (
    "<script>window.__qaPwned = 'script'</script>关于霞光渡口的说明\n\n"
    "霞光渡口每天早上六点开船。<img src=x onerror=\"window.__qaPwned='img'\">"
    "<svg onload=\"window.__qaPwned='svg'\"></svg><a href=\"javascript:window.__qaPwned='a'\">链接</a>"
    "渡口的船长姓柏，已经摆渡二十年。\n"
)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "browser-app") as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(app, browser):
    """One page for the whole flow; records requests that leave the machine and any dialog."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.outside, page.dialogs = [], []

    def route(r):
        if r.request.url.startswith(app.url) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            page.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(app.url)
    page.wait_for_selector("#qa-question textarea", timeout=60_000)
    yield page
    context.close()


def ask(page: Page, question: str) -> None:
    before = page.locator("#qa-chat .qa-reply").count()
    page.fill("#qa-question textarea", question)
    page.keyboard.press("Enter")
    expect(page.locator("#qa-chat .qa-reply")).to_have_count(before + 1, timeout=60_000)


def test_page_loads_offline_with_examples_and_model(page):
    expect(page.locator("#qa-header")).to_contain_text("嵌入模型")
    examples = page.get_by_role("button", name=re.compile("Select example"))
    expect(examples).to_have_count(3)  # example questions on the empty chat, about the collection's articles
    assert page.outside == [], f"the page fetched from the internet: {page.outside}"


def test_an_example_question_is_answered_and_new_chat_clears(page):
    page.get_by_role("button", name=re.compile("Select example 2")).click()
    expect(page.locator("#qa-chat .qa-reply")).to_have_count(1, timeout=60_000)
    expect(page.locator("#qa-chat .qa-reply a.qa-cite").first).to_be_visible()
    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat .qa-reply")).to_have_count(0)


def test_asks_and_shows_a_cited_answer(page):
    ask(page, QUESTION)
    reply = page.locator("#qa-chat .qa-reply").last
    expect(reply.locator(".qa-lead")).to_contain_text("情满崮乡")
    expect(reply.locator(".qa-lead a.qa-cite").first).to_have_text("[1]")
    expect(reply.locator(".qa-src").first).to_contain_text("蒙阴")
    expect(reply.locator("mark.qa-kw").first).to_be_visible()
    expect(page.locator("#qa-article #qa-cited")).to_be_visible()  # the top citation opens by itself
    expect(page.locator("#qa-chat .qa-reply").last.locator(".qa-lead")).to_be_in_viewport()  # read from the top
    OUT.mkdir(exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / "chat-answer.png"))


def test_citation_opens_the_article_with_the_passage_highlighted_in_view(page):
    reply = page.locator("#qa-chat .qa-reply").last
    card = reply.locator(".qa-src").last
    title = card.locator(".qa-title").inner_text()
    where = re.search(r"字符 \d+–\d+", card.locator(".qa-meta").inner_text()).group(0)
    card.locator("a.qa-cite").click()
    panel = page.locator("#qa-article")
    expect(panel.locator(".qa-art-head")).to_contain_text(where)
    expect(panel.locator(".qa-art-title")).to_have_text(title)
    cited = panel.locator("#qa-cited")
    expect(cited).to_be_visible()
    expect(cited).to_be_in_viewport()
    words = [w for w in re.split(r"[…\s]+", card.locator(".qa-passage").inner_text()) if len(w) >= 8]
    assert words and words[len(words) // 2] in cited.inner_text().replace("\n", " ")
    page.screenshot(path=str(OUT / "chat-citation.png"))


def test_follow_up_shows_the_interpreted_query(page):
    ask(page, "泰州海陵公安分局有多少名党员？")
    ask(page, "那巡特警大队呢？")
    expect(page.locator("#qa-chat .qa-reply").last.locator(".qa-query")).to_contain_text("检索")


def test_on_a_phone_the_answer_stays_in_view_and_the_article_opens_on_demand(app, browser):
    """390 x 844: the page does not move to the article after a question; a citation opens it over the chat, and
    its close button (or Escape) brings the answer back."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN")
    phone = context.new_page()
    phone.goto(app.url)
    phone.wait_for_selector("#qa-question textarea", timeout=60_000)
    ask(phone, QUESTION)
    reply = phone.locator("#qa-chat .qa-reply").last
    lead, side = reply.locator(".qa-lead"), phone.locator("#qa-side")
    expect(lead).to_contain_text("情满崮乡")
    expect(phone.locator("#qa-article #qa-cited")).to_be_attached()  # the top citation is loaded, out of the way
    phone.wait_for_timeout(500)
    expect(lead).to_be_in_viewport()
    assert phone.evaluate("window.scrollY") == 0
    expect(side).to_be_hidden()
    OUT.mkdir(exist_ok=True)
    phone.screenshot(path=str(OUT / "phone.png"))  # docs/phone.png is a copy
    card = reply.locator(".qa-src").nth(1)
    title = card.locator(".qa-title").inner_text()
    card.locator("a.qa-cite").click()
    expect(side).to_be_visible()
    expect(side.locator(".qa-art-title")).to_have_text(title)
    expect(side.locator("#qa-cited")).to_be_in_viewport()
    phone.screenshot(path=str(OUT / "phone-article.png"))
    side.locator(".qa-close").click()
    expect(side).to_be_hidden()
    expect(lead).to_be_in_viewport()
    card.locator("a.qa-cite").click()  # the same passage again: the panel is unchanged, and still scrolled to it
    expect(side.locator("#qa-cited")).to_be_in_viewport()
    phone.keyboard.press("Escape")
    expect(side).to_be_hidden()
    expect(lead).to_be_in_viewport()
    context.close()


def test_admin_actions_stay_disabled_without_the_password(page):
    page.get_by_role("tab", name="文档").click()
    expect(page.locator("#qa-docs")).to_contain_text("共 5 篇")
    expect(page.locator("#qa-upload-btn")).to_be_disabled()
    page.get_by_label("管理员密码").fill("wrong")
    page.get_by_role("button", name="解锁").click()
    expect(page.locator("#qa-report textarea")).to_have_value("管理员密码不正确。")
    expect(page.locator("#qa-upload-btn")).to_be_disabled()


def upload(page: Page, path: Path) -> None:
    page.locator("#qa-upload input[type=file]").set_input_files(str(path))
    expect(page.locator("#qa-upload")).to_contain_text(path.name, timeout=30_000)
    page.locator("#qa-upload-btn").click()
    expect(page.locator("#qa-report textarea")).to_have_value(re.compile("新增 1 篇"), timeout=120_000)


def picker_options(page: Page) -> list[str]:
    """The remove picker's choices as the page shows them."""
    page.locator("#qa-picker input").click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    texts = options.all_inner_texts()
    page.keyboard.press("Escape")
    return texts


def test_admin_uploads_a_document_and_sees_it_listed(page, tmp_path):
    other = page.context.new_page()  # a second visitor whose page was loaded before the upload
    other.goto(page.url)
    other.get_by_role("tab", name="文档").click()
    expect(other.locator("#qa-docs")).to_contain_text("共 5 篇")
    page.get_by_label("管理员密码").fill(PASSWORD)
    page.get_by_role("button", name="解锁").click()
    expect(page.locator("#qa-upload-btn")).to_be_enabled()
    doc = tmp_path / "社区通知.txt"
    doc.write_text("柳荫社区开设老年书法班\n\n柳荫社区老年书法班每周三上午上课，由书法家韩青授课。", encoding="utf-8")
    upload(page, doc)
    expect(page.locator("#qa-docs")).to_contain_text("柳荫社区开设老年书法班")
    assert any("柳荫社区" in o for o in picker_options(page))
    page.screenshot(path=str(OUT / "documents.png"))
    other.get_by_role("tab", name="对话").click()
    other.get_by_role("tab", name="文档").click()  # coming back to the tab shows the index as it is now
    expect(other.locator("#qa-docs")).to_contain_text("柳荫社区开设老年书法班")
    assert any("柳荫社区" in o for o in picker_options(other))
    other.close()


def test_markup_in_an_uploaded_article_shows_as_text_and_runs_nothing(page, tmp_path):
    page.locator("#qa-upload button[aria-label='Clear']").first.click() if page.locator(
        "#qa-upload button[aria-label='Clear']").count() else None
    doc = tmp_path / "xss.txt"
    doc.write_text(XSS, encoding="utf-8")
    upload(page, doc)
    expect(page.locator("#qa-docs")).to_contain_text("共 7 篇")
    page.get_by_role("tab", name="对话").click()
    ask(page, "霞光渡口的船长姓什么？")
    reply = page.locator("#qa-chat .qa-reply").last
    reply.locator("a.qa-cite").first.click()
    panel = page.locator("#qa-article")
    expect(panel).to_contain_text("<img src=x onerror=")
    expect(panel).to_contain_text("<svg onload=")
    assert panel.locator(".qa-article img, .qa-article svg, .qa-article script").count() == 0
    assert page.locator("#qa-chat .qa-reply :is(img, svg, script)").count() == 0
    page.wait_for_timeout(500)
    assert page.evaluate("window.__qaPwned") is None
    assert page.dialogs == []
    page.screenshot(path=str(OUT / "xss-as-text.png"))
    assert page.outside == []


def test_removing_a_document_takes_it_out_of_the_picker(page):
    page.get_by_role("tab", name="文档").click()
    title = next(o for o in picker_options(page) if "柳荫社区" in o)
    page.locator("#qa-picker input").click()
    page.keyboard.type("柳荫社区")  # highlights that document
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#qa-picker input")).to_have_value(title)
    page.locator("#qa-remove-btn").click()
    expect(page.locator("#qa-report textarea")).to_have_value(re.compile("删除 1 篇"), timeout=60_000)
    expect(page.locator("#qa-docs")).to_contain_text("共 6 篇")
    assert not any("柳荫社区" in o for o in picker_options(page))
