"""The web chat's page: a chat tab with the article panel, and a documents tab; every event wired.

gradio is imported inside functions so ``qa --help`` stays instant. A click on
a citation ``[n]`` is caught by a small page script (``present.html.HEAD``) that
hands the citation to a hidden button, whose event opens the article in the
side panel and scrolls the cited span into view. The endpoint names
(``api_name``) and argument orders are the web API: clients depend on them.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, cast

from ..present import html as page
from ..config import Settings
from ..errors import QAError
from .admin import TEMP_MAX_AGE, Office, supported_suffixes
from .chat import Library, public_message, web_errors
from .guard import TrustedClients

if TYPE_CHECKING:
    from ..kb import Bases
    from ..pipeline import Bot
    from .api import Gate

CONCURRENCY = 4  # questions retrieved at once (chat and API together, kept by Chat); the Bot is thread-safe for reads
HINT = "点击回答中的引用编号 [1]、[2]… 查看原文。"


def build_app(bases: Bases, settings: Settings, trusted: TrustedClients | None = None, gate: Gate | None = None) -> Any:
    """The Blocks app: a knowledge-base picker over a chat tab (with the article panel) and a documents tab.

    Everything on the page acts on the picked base, read through ``Library`` with the keys this browser
    session entered (kept in a gr.State on the server, never sent back). The page opens on
    ``settings.kb`` when a visitor without a key may read it, else on ``default``; ``?kb=NAME`` in the
    address opens a public base. With ``default`` the only base, the picker is hidden and the page is the
    one-collection chat it always was (``Library.several`` says why).

    ``trusted``: the addresses that passed the admin password, shared with the upload guard
    (``server.build_server_app``) so it keeps upload room for them. ``gate``: the answer slots shared with
    the API; each question of the chat takes one (``LimitedBot``).
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    wrap = None
    if gate is not None:
        from .api import LimitedBot

        def wrap(bot: Bot) -> Bot:
            return cast("Bot", LimitedBot(bot, gate))

    library = Library(bases, settings.kb, wrap, CONCURRENCY)
    office = Office(library, settings, trusted=trusted)
    first = library.opening()
    shown = library.open(first, {})
    enabled = bool(settings.admin_password)
    examples = library.examples(first, {})
    # delete_cache: uploads picked but never sent to an admin action go after TEMP_MAX_AGE (and all at exit)
    with gr.Blocks(title="文档问答", analytics_enabled=False, delete_cache=(60, TEMP_MAX_AGE)) as app:
        picked, keys = gr.State(first), gr.State({})  # the base asked, the keys entered: server-side only
        gr.HTML(page.render_header(shown.encoder_name, shown.encoder_notice), elem_id="qa-header")
        with gr.Row(visible=library.several(), elem_id="qa-bases", equal_height=True) as base_row:
            # custom values reach ``switch``, which refuses them in one line: gradio's own check of the choices
            # would log a traceback for every forged call
            kb_picker = gr.Dropdown(label="知识库", choices=library.choices({}), value=first, scale=3, min_width=300,
                                    elem_id="qa-kb", allow_custom_value=True)
            key_box = gr.Textbox(label="私有知识库密钥", type="password", scale=2, min_width=220, elem_id="qa-key",
                                 placeholder="输入密钥，回车")
            key_btn = gr.Button("打开", scale=0, min_width=64, elem_id="qa-key-btn")
        with gr.Tab("对话", id="chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=6, min_width=420):
                    chatbot = gr.Chatbot(
                        elem_id="qa-chat", show_label=False, height="68vh", render_markdown=False, autoscroll=False,
                        sanitize_html=True, allow_tags=False, latex_delimiters=[], feedback_options=None,
                        buttons=["copy"], placeholder="向文档库提问，回答会注明出处。",
                        examples=_examples(examples),
                    )
                    with gr.Row(elem_id="qa-input"):
                        box = gr.Textbox(placeholder="输入问题，按回车发送", show_label=False, scale=8, autofocus=True,
                                         elem_id="qa-question", max_lines=4)
                        send = gr.Button("发送", variant="primary", scale=1, min_width=70, elem_id="qa-send")
                        new = gr.Button("新对话", variant="secondary", scale=1, min_width=70, elem_id="qa-new")
                with gr.Column(scale=5, min_width=340, elem_id="qa-side"):  # on a phone: a sheet (present.html)
                    article = gr.HTML(page.render_notice(HINT), elem_id="qa-article", js_on_load=page.SCROLL_JS,
                                      max_height=None)
            cite = gr.Textbox(visible="hidden", elem_id="qa-cite-box")
            opener = gr.Button("open", visible="hidden", elem_id="qa-open")
            data = gr.JSON(visible="hidden")
        with gr.Tab("文档", id="docs") as docs_tab:
            docs_html, choices = office.doc_view(first, {})
            with gr.Row():
                password = gr.Textbox(
                    label="管理员密码",
                    type="password",
                    scale=3,
                    interactive=enabled,
                    placeholder="输入后才能上传、删除、重建" if enabled else "未设置 QA_ADMIN_PASSWORD，管理功能已关闭",
                )
                unlock = gr.Button("解锁", scale=1, interactive=enabled)
            status = gr.Textbox(label="操作结果", interactive=False, lines=3, elem_id="qa-report")
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"上传文档（{'、'.join(supported_suffixes())}，每个不超过 {settings.max_upload_mb} MB）",
                        file_count="multiple",
                        file_types=supported_suffixes(),
                        type="filepath",
                        elem_id="qa-upload",
                    )
                    up = gr.Button("上传并加入索引", variant="primary", interactive=False, elem_id="qa-upload-btn")
                with gr.Column():
                    # custom values: an id is checked by the handler against the index as it is now, not
                    # against the choices this page was launched with (a new API session has only those)
                    doc_picker = gr.Dropdown(label="选择要删除的文档", choices=choices, value=None,
                                             elem_id="qa-picker", allow_custom_value=True)
                    rm = gr.Button("删除所选文档", variant="stop", interactive=False, elem_id="qa-remove-btn")
                    rb = gr.Button("重建索引（增量）", interactive=False, elem_id="qa-rebuild-btn")
            listing = gr.HTML(docs_html, elem_id="qa-docs")
            with gr.Accordion("知识库：新建、删除", open=False, elem_id="qa-kb-admin"):
                with gr.Row():
                    new_name = gr.Textbox(label="新知识库名称", placeholder="字母、数字、- 和 _，如 hr-rules", scale=2,
                                          elem_id="qa-kb-name")
                    new_title = gr.Textbox(label="标题（可选）", scale=2, elem_id="qa-kb-title")
                    new_private = gr.Checkbox(label="私有（凭密钥访问，密钥只显示一次）", scale=1,
                                              elem_id="qa-kb-private")
                    create = gr.Button("新建知识库", interactive=False, scale=1, elem_id="qa-kb-create")
                with gr.Row():
                    confirm = gr.Textbox(label="删除当前所选的知识库：输入它的名称以确认", scale=4,
                                         elem_id="qa-kb-confirm")
                    drop = gr.Button("删除知识库", variant="stop", interactive=False, scale=1, elem_id="qa-kb-delete")

        view_out = [picked, kb_picker, base_row, chatbot, data, article, listing, doc_picker]

        def view(kb: str, held: Any, panel: str | None = None, new_chat: bool = True) -> dict:
            """The page on base ``kb``: the picker, its example questions and documents, and (``new_chat``)
            an empty conversation. The picker's own event empties the chat in the browser at once instead,
            so a question sent right after picking is not wiped by this update arriving after its reply."""
            table, docs = office.doc_view(kb, held)
            examples = _examples(library.examples(kb, held))
            shown = {picked: kb, kb_picker: gr.Dropdown(choices=library.choices(held), value=kb),
                     base_row: gr.Row(visible=library.several()), chatbot: gr.Chatbot(examples=examples),
                     listing: table, doc_picker: gr.Dropdown(choices=docs, value=None)}
            if new_chat:
                shown.update({chatbot: gr.Chatbot(value=[], examples=examples), data: {},
                              article: panel or page.render_notice(HINT)})
            return shown

        # The page's questions go to the base its picker shows (a name from the browser, opened only with this
        # session's keys); the public /chat endpoint asks the session's picked base, which for an API client
        # is the base the page opens on.
        ask_in = [box, chatbot, kb_picker, keys]
        ask_out = [chatbot, data, box, article]
        # no gradio limit on the chat's events: Chat keeps CONCURRENCY on retrieval and lets a slow model hold up
        # no one else (see Chat). One event for Enter and the button, so a question sent while a reply streams
        # is not a second writer of the same chat.
        free: dict[str, Any] = {"concurrency_limit": None}
        asking = gr.on([box.submit, send.click], library.stream, ask_in, ask_out, api_visibility="private", **free)
        chat_api = gr.Button("chat", visible="hidden", elem_id="qa-chat-api")
        chat_api.click(library.stream, [box, chatbot, picked, keys], ask_out, api_name="chat", **free)

        def pick(event: gr.SelectData) -> str:
            return event.value["text"]

        pick.__annotations__ = {"event": gr.SelectData, "return": str}  # resolvable without module-level gradio

        example = chatbot.example_select(pick, None, box, api_visibility="private").then(
            library.stream, ask_in, ask_out, api_visibility="private", **free)
        replies = [asking, example]
        # a new chat stops a reply still streaming, which would otherwise write the old chat back
        new.click(lambda: ([], {}, "", page.render_notice("新对话。")), None, ask_out, api_visibility="private",
                  cancels=replies)
        opener.click(library.open_article, [kb_picker, keys, cite, chatbot], article,
                     js="(k, s, c, m) => [k, s, window.qaCite || c, m]", api_visibility="private")

        def switch(kb: Any, current: str, held: Any) -> dict:
            """The picker moved: a new conversation on that base (or back to the current one if it cannot open)."""
            try:
                library.base(kb, held)
            except QAError as error:
                gr.Warning(public_message(error))
                return view(current, held, new_chat=False)
            return view(kb, held, new_chat=False)

        cleared = f"() => [[], {{}}, {json.dumps(page.render_notice(HINT))}]"  # in the browser, at once
        kb_picker.input(None, None, [chatbot, data, article], js=cleared, api_visibility="private", cancels=replies)
        kb_picker.input(switch, [kb_picker, picked, keys], view_out, api_visibility="private")

        def enter_key(key: Any, held: Any) -> dict:
            """A key entered: the private base it opens joins the picker and is picked; the field is emptied."""
            with web_errors():
                held, opened = library.unlock(key, held)
            gr.Info(f"已打开私有知识库 {opened[0].name}。")
            return {keys: held, key_box: "", **view(opened[0].name, held)}

        gr.on([key_box.submit, key_btn.click], enter_key, [key_box, keys], [keys, key_box, *view_out],
              api_visibility="private", cancels=replies)

        def takes_request(fn):
            """gradio finds the gr.Request parameter by its annotation, which must be the class itself."""
            fn.__annotations__ = {**fn.__annotations__, "request": gr.Request}
            return fn

        admin_buttons = [up, rm, rb, create, drop]

        @takes_request
        def unlocked(pw: str, request: gr.Request):
            with web_errors():
                refusal = office.check_password(pw, _host(request))
            return (refusal or "已解锁：可以上传、删除、重建，新建和删除知识库。",
                    *[gr.Button(interactive=not refusal)] * len(admin_buttons))

        unlock.click(unlocked, password, [status, *admin_buttons], api_visibility="private")
        password.submit(unlocked, password, [status, *admin_buttons], api_visibility="private")
        admin_out = [status, listing, doc_picker]
        lim: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "admin"}

        @takes_request
        def upload(files: list[dict] | None, password: str, kb: str, held: dict, request: gr.Request,
                   progress=gr.Progress()):  # noqa: B008 (gradio injects it)
            return office.upload(files, password, kb, held, progress, client=_host(request))

        @takes_request
        def rebuild(password: str, kb: str, held: dict, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            return office.rebuild(password, kb, held, progress, client=_host(request))

        @takes_request
        def remove(doc_id: str | None, password: str, kb: str, held: dict, request: gr.Request):
            return office.remove(doc_id, password, kb, held, client=_host(request))

        # preprocess=False: the handler gets gradio's FileData dicts as they are (path, orig_name); gr.File's
        # own preprocessing leaves an empty temp file behind per file and call, even for a wrong password.
        # The temp files are gone after an upload, whatever its outcome: clear the file picker too.
        up.click(upload, [files, password, picked, keys], admin_out, api_name="upload", preprocess=False,
                 **lim).then(lambda: None, None, files, api_visibility="private")
        rm.click(remove, [doc_picker, password, picked, keys], admin_out, api_name="remove", **lim)
        rb.click(rebuild, [password, picked, keys], admin_out, api_name="rebuild", **lim)

        @takes_request
        def created(name: Any, title: Any, private: Any, pw: str, held: Any, request: gr.Request) -> dict:
            report, base, held = office.create(name, title, private, pw, held, client=_host(request))
            return {status: report, keys: held, new_name: "", new_title: "", new_private: False,
                    **view(base.name, held)}

        @takes_request
        def deleted(kb: Any, typed: Any, pw: str, held: Any, request: gr.Request) -> dict:
            report = office.delete(kb, typed, pw, held, client=_host(request))
            return {status: report, confirm: "", **view(library.opening(), held)}

        create.click(created, [new_name, new_title, new_private, password, keys],
                     [status, keys, new_name, new_title, new_private, *view_out], api_visibility="private",
                     cancels=replies, **lim)
        drop.click(deleted, [picked, confirm, password, keys], [status, confirm, *view_out],
                   api_visibility="private", cancels=replies, **lim)

        @takes_request
        def opened(request: gr.Request) -> dict:
            """A new page: the bases as they are now (``?kb=NAME`` picks a public one); a page opened from an
            API reply's source link (``?cite=…``) shows that article."""
            query = getattr(request, "query_params", {})
            wanted, cited = query.get("kb"), query.get("cite")
            kb = library.opening()
            if isinstance(wanted, str) and wanted:
                try:
                    kb = library.base(wanted, {}).name
                except QAError:
                    pass
            panel = library.open_article(kb, {}, cited) if isinstance(cited, str) and cited else None
            return view(kb, {}, panel)

        app.load(opened, None, view_out, api_visibility="private")
        # the list and the picker follow the index on every return to the tab, so changes made from another
        # browser or the CLI show up without reloading the page
        docs_tab.select(office.refresh, [picked, keys], [listing, doc_picker], api_visibility="private")
        gr.api(library.ask, api_name="ask", **free)
        gr.api(library.search, api_name="search", **free)
        gr.api(library.documents, api_name="documents")
    app.queue(default_concurrency_limit=CONCURRENCY)
    return app


def _examples(questions: list[str]) -> Any:
    """The chat's example cards (None: no cards, for a base without documents)."""
    return [{"text": q} for q in questions] or None


def _host(request: Any) -> str | None:
    """The caller's address: the peer's, or the client's from X-Forwarded-For when the peer is a trusted proxy.

    uvicorn rewrites the address before gradio sees it, trusting the header only from
    loopback or FORWARDED_ALLOW_IPS, so a remote client cannot forge its way out of a lockout.
    """
    client = getattr(request, "client", None)
    return getattr(client, "host", None)
