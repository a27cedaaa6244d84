"""The web chat's page: a chat tab with the article panel, and a documents tab; every event wired.

gradio is imported inside functions so ``qa --help`` stays instant. A click on
a citation ``[n]`` is caught by a small page script (``present.html.HEAD``) that
hands the citation to a hidden button, whose event opens the article in the
side panel and scrolls the cited span into view. The endpoint names
(``api_name``) and argument orders are the web API: clients depend on them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..present import html as page
from ..config import Settings
from .admin import TEMP_MAX_AGE, Admin, supported_suffixes
from .chat import Chat, web_errors
from .guard import TrustedClients

if TYPE_CHECKING:
    from ..pipeline import Bot

CONCURRENCY = 4  # questions retrieved at once (chat and API together, kept by Chat); the Bot is thread-safe for reads


def build_app(bot: Bot, settings: Settings, trusted: TrustedClients | None = None) -> Any:
    """The Blocks app: a chat tab (with the article panel) and a documents tab.

    ``trusted``: the addresses that passed the admin password, shared with the
    upload guard (``server.build_server_app``) so it keeps upload room for them.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    chat, admin = Chat(bot, CONCURRENCY), Admin(bot, settings, trusted=trusted)
    titles = [d["title"] for d in chat.documents()]
    enabled = bool(settings.admin_password)
    # delete_cache: uploads picked but never sent to an admin action go after TEMP_MAX_AGE (and all at exit)
    with gr.Blocks(title="文档问答", analytics_enabled=False, delete_cache=(60, TEMP_MAX_AGE)) as app:
        gr.HTML(page.render_header(bot.encoder_name, bot.encoder_notice), elem_id="qa-header")
        with gr.Tab("对话", id="chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=6, min_width=420):
                    chatbot = gr.Chatbot(
                        elem_id="qa-chat", show_label=False, height="68vh", render_markdown=False, autoscroll=False,
                        sanitize_html=True, allow_tags=False, latex_delimiters=[], feedback_options=None,
                        buttons=["copy"], placeholder="向文档库提问，回答会注明出处。",
                        examples=[{"text": q} for q in page.example_questions(titles)],
                    )
                    with gr.Row(elem_id="qa-input"):
                        box = gr.Textbox(placeholder="输入问题，按回车发送", show_label=False, scale=8, autofocus=True,
                                         elem_id="qa-question", max_lines=4)
                        send = gr.Button("发送", variant="primary", scale=1, min_width=70, elem_id="qa-send")
                        new = gr.Button("新对话", variant="secondary", scale=1, min_width=70, elem_id="qa-new")
                with gr.Column(scale=5, min_width=340, elem_id="qa-side"):  # on a phone: a sheet (present.html)
                    article = gr.HTML(page.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。"),
                                      elem_id="qa-article", js_on_load=page.SCROLL_JS, max_height=None)
            cite = gr.Textbox(visible="hidden", elem_id="qa-cite-box")
            opener = gr.Button("open", visible="hidden", elem_id="qa-open")
            data = gr.JSON(visible="hidden")
        with gr.Tab("文档", id="docs") as docs_tab:
            docs_html, choices = admin.doc_view()
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
                    picker = gr.Dropdown(label="选择要删除的文档", choices=choices, value=None, elem_id="qa-picker",
                                         allow_custom_value=True)
                    rm = gr.Button("删除所选文档", variant="stop", interactive=False, elem_id="qa-remove-btn")
                    rb = gr.Button("重建索引（增量）", interactive=False, elem_id="qa-rebuild-btn")
            listing = gr.HTML(docs_html, elem_id="qa-docs")

        ask_in = [box, chatbot]
        ask_out = [chatbot, data, box, article]
        # no gradio limit on the chat's events: Chat keeps CONCURRENCY on retrieval and lets a slow model hold up
        # no one else (see Chat). One event for Enter and the button, so a question sent while a reply streams
        # is not a second writer of the same chat.
        free: dict[str, Any] = {"concurrency_limit": None}
        asking = gr.on([box.submit, send.click], chat.stream, ask_in, ask_out, api_name="chat", **free)
        def pick(event: gr.SelectData) -> str:
            return event.value["text"]

        pick.__annotations__ = {"event": gr.SelectData, "return": str}  # resolvable without module-level gradio

        example = chatbot.example_select(pick, None, box, api_visibility="private").then(
            chat.stream, ask_in, ask_out, api_visibility="private", **free)
        # a new chat stops a reply still streaming, which would otherwise write the old chat back
        new.click(lambda: ([], {}, "", page.render_notice("新对话。")), None, ask_out, api_visibility="private",
                  cancels=[asking, example])
        opener.click(chat.open_article, [cite, chatbot], article, js="(c, m) => [window.qaCite || c, m]",
                     api_visibility="private")

        def takes_request(fn):
            """gradio finds the gr.Request parameter by its annotation, which must be the class itself."""
            fn.__annotations__ = {**fn.__annotations__, "request": gr.Request}
            return fn

        @takes_request
        def unlocked(pw: str, request: gr.Request):
            with web_errors():
                refusal = admin.check_password(pw, _host(request))
            return (refusal or "已解锁：可以上传、删除和重建。", *[gr.Button(interactive=not refusal)] * 3)

        unlock.click(unlocked, password, [status, up, rm, rb], api_visibility="private")
        password.submit(unlocked, password, [status, up, rm, rb], api_visibility="private")
        admin_out = [status, listing, picker]
        lim: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "admin"}

        @takes_request
        def upload(files: list[dict] | None, password: str, request: gr.Request,
                   progress=gr.Progress()):  # noqa: B008 (gradio injects it)
            return admin.upload(files, password, progress, client=_host(request))

        @takes_request
        def rebuild(password: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            return admin.rebuild(password, progress, client=_host(request))

        @takes_request
        def remove(doc_id: str | None, password: str, request: gr.Request):
            return admin.remove(doc_id, password, client=_host(request))

        # preprocess=False: the handler gets gradio's FileData dicts as they are (path, orig_name); gr.File's
        # own preprocessing leaves an empty temp file behind per file and call, even for a wrong password.
        # The temp files are gone after an upload, whatever its outcome: clear the file picker too.
        up.click(upload, [files, password], admin_out, api_name="upload", preprocess=False, **lim).then(
            lambda: None, None, files, api_visibility="private")
        rm.click(remove, [picker, password], admin_out, api_name="remove", **lim)
        rb.click(rebuild, password, admin_out, api_name="rebuild", **lim)
        # the list and the picker follow the index on every visit and every return to the tab, so
        # changes made from another browser or the CLI show up without reloading the page
        app.load(admin.refresh, None, [listing, picker], api_visibility="private")

        @takes_request
        def linked(request: gr.Request) -> Any:
            """A page opened from an API reply's source link (``/?cite=…``) shows that article."""
            cite = getattr(request, "query_params", {}).get("cite")
            return chat.open_article(cite) if isinstance(cite, str) and cite else gr.skip()

        app.load(linked, None, article, api_visibility="private")
        docs_tab.select(admin.refresh, None, [listing, picker], api_visibility="private")
        gr.api(chat.ask, api_name="ask", **free)
        gr.api(chat.search, api_name="search", **free)
        gr.api(chat.documents, api_name="documents")
    app.queue(default_concurrency_limit=CONCURRENCY)
    return app


def _host(request: Any) -> str | None:
    """The caller's address: the peer's, or the client's from X-Forwarded-For when the peer is a trusted proxy.

    uvicorn rewrites the address before gradio sees it, trusting the header only from
    loopback or FORWARDED_ALLOW_IPS, so a remote client cannot forge its way out of a lockout.
    """
    client = getattr(request, "client", None)
    return getattr(client, "host", None)
