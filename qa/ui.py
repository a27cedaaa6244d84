"""The web chat (the only gradio importer): chat with cited passages, and document admin.

gradio is imported inside functions so ``qa --help`` stays instant. All HTML
comes from ``render.py``, which escapes every piece of document text; the chat
component additionally sanitises. A click on a citation ``[n]`` is caught by a
small page script (``render.HEAD``) that hands the citation to a hidden button,
whose event opens the article in the side panel and scrolls the cited span into view.
"""

from __future__ import annotations

import hmac
import html
import os
import re
import shutil
import sys
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection

from . import render
from .config import Settings
from .errors import IndexMissing, IndexUnavailable, QAError, UsageError
from .text import keywords
from .types import Answer

if TYPE_CHECKING:
    from .pipeline import Bot

CONCURRENCY = 4  # questions answered at once; the Bot is thread-safe for reads
STAGES = {"embed": "嵌入段落", "load": "读取文档", "chunk": "切分段落", "index": "写入索引"}


def admin_ok(settings: Settings, password: str | None) -> bool:
    """Admin actions need a configured password, typed correctly (constant-time compare)."""
    expected = settings.admin_password or ""
    given = password or ""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def safe_name(name: str, suffixes: Collection[str]) -> str:
    """A file name safe to create in the uploads folder, from whatever the browser sent.

    Only the last path component survives; anything but letters, digits, CJK,
    ``-_.`` becomes ``_``; the suffix must be one ingestion reads.
    """
    base = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = "." + suffix.lower()
    if suffix not in suffixes:
        raise UsageError(
            f"文件 {base!r} 的格式不受支持。", f"支持的格式：{'、'.join(sorted(suffixes))}。"
        )
    stem = re.sub(r"[^\w\-.]+", "_", stem, flags=re.UNICODE).strip("._ ")[:80] or "upload"
    return stem + suffix


def public_json(answer: Answer) -> dict:
    """`qa ask --json` for the web: the same keys, but no server file paths.

    A path is the server's business, and gradio_client would take any dict
    with a string "path" for a file to download (and fail with 403).
    """
    from .pipeline import answer_to_json

    data = answer_to_json(answer)
    for citation in data["citations"]:
        citation["path"] = None
    return data


class Chat:
    """The event handlers, bound to one Bot; plain methods so tests can call them."""

    def __init__(self, bot: Bot, settings: Settings) -> None:
        self.bot, self.settings = bot, settings
        self.uploads = settings.uploads_dir

    # -- chat ----------------------------------------------------------------
    def reply(self, message: str, messages: list[dict] | None) -> tuple[list[dict], dict, str, str]:
        """One chat turn: (messages, answer JSON, cleared input, article panel)."""
        messages = list(messages or [])
        question = (message or "").strip()
        if not question:
            return messages, {}, "", render.render_notice("请输入问题。")
        panel = render.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。")
        try:
            answer = self.bot.ask(question, render.earlier_questions(messages))
            words = keywords(answer.query)
            content, data = render.render_answer(answer, words), public_json(answer)
            valid = [h for h in answer.hits if render.is_valid(h)]
            if valid and not answer.abstained:
                top = valid[0]
                panel = render.render_article(top.document, top.passage.start, top.passage.end, words)
        except QAError as error:
            content, data = f'<p class="qa-error">{render.esc(str(error))}</p>', {"error": str(error)}
        messages += [
            {"role": "user", "content": html.escape(question)},
            {"role": "assistant", "content": content},
        ]
        return messages, data, "", panel

    def open_article(self, cite: str, messages: list[dict] | None = None) -> str:
        """The article behind a citation link, with the cited span marked."""
        parsed = render.parse_cite(cite)
        if parsed is None:
            return render.render_notice("无法识别这个引用。")
        doc_id, start, end = parsed
        try:
            doc = self.bot.document(doc_id)
        except QAError:
            return render.render_notice("这篇文档已不在文档库中。")
        if end > len(doc.text):
            return render.render_notice("引用位置超出了文档范围，文档可能已更新，请重新提问。")
        questions = render.earlier_questions(messages or [])
        words = keywords(questions[-1]) if questions else []
        return render.render_article(doc, start, end, words)

    def ask(self, question: str, history: list[str] | None = None) -> dict:
        """API: the `qa ask --json` answer to a question; history = earlier questions."""
        return public_json(self.bot.ask(question, list(history or [])))

    def search(self, query: str, k: int = 5) -> dict:
        """API: the top-k passages for a query, no follow-up folding; same shape as ask."""
        return public_json(self.bot.ask(query, [], k=max(1, int(k))))

    # -- documents -------------------------------------------------------------
    def documents(self) -> list[dict]:
        """API: the indexed documents (title, source, date, passages, doc_id)."""
        try:
            infos = self.bot.documents()
        except (IndexMissing, IndexUnavailable):  # a served index that is down: the chat says so when asked
            return []
        keys = ("doc_id", "title", "source", "date", "url", "passages")
        return [{k: getattr(info, k, None) for k in keys} for info in infos]

    def doc_view(self) -> tuple[str, list[tuple[str, str]]]:
        """The documents table and the remove picker's choices (label, doc_id)."""
        docs = self.documents()
        return render.render_documents(docs), [(f"{d['title']}（{d['doc_id'][:12]}）", d["doc_id"]) for d in docs]

    def _after(self, text: str) -> tuple[str, str, Any]:
        """Outputs of an admin action: its report, the refreshed table and picker."""
        import gradio as gr

        table, choices = self.doc_view()
        return text, table, gr.Dropdown(choices=choices, value=None)

    def _check(self, password: str | None) -> None:
        import gradio as gr

        if not self.settings.admin_password:
            raise gr.Error("管理功能未启用：请设置环境变量 QA_ADMIN_PASSWORD 后重启。")
        if not admin_ok(self.settings, password):
            raise gr.Error("管理员密码不正确。")

    def _titles(self) -> dict[str, str]:
        return {d["doc_id"]: d["title"] for d in self.documents()}

    def upload(self, files: list[str] | None, password: str, progress: Any = None) -> tuple[str, str, Any]:
        """Admin: copy uploaded files into the uploads folder and add them to the index."""
        from .load import SUPPORTED

        self._check(password)
        if not files:
            raise gr_error("请先选择要上传的文件。")
        limit = self.settings.max_upload_mb * 1024 * 1024
        self.uploads.mkdir(parents=True, exist_ok=True)
        saved = []
        for item in files:
            src = Path(item if isinstance(item, str) else (getattr(item, "name", None) or item["path"]))
            try:
                name = safe_name(getattr(item, "orig_name", None) or src.name, SUPPORTED)
            except UsageError as error:
                raise gr_error(str(error)) from None
            if src.stat().st_size > limit:
                raise gr_error(f"文件 {name} 超过上传上限 {self.settings.max_upload_mb} MB。")
            shutil.copyfile(src, self.uploads / name)
            saved.append(self.uploads / name)
        return self._build(saved, add_only=True, progress=progress)

    def rebuild(self, password: str, progress: Any = None) -> tuple[str, str, Any]:
        """Admin: bring the index up to date with the seeds and uploads folders."""
        self._check(password)
        roots = [p for p in (Path(self.settings.seeds_dir), self.uploads) if p.is_dir()]
        if not roots:
            raise gr_error("没有可索引的文件夹（种子文件夹和上传文件夹都不存在）。")
        return self._build(roots, add_only=False, progress=progress)

    def _build(self, paths: list[Path], add_only: bool, progress: Any) -> tuple[str, str, Any]:
        try:
            def step(stage: str, done: int, total: int) -> None:
                if progress is not None:
                    progress((done, total), desc=STAGES.get(stage, stage))

            report = self.bot.build(paths, add_only=add_only, progress=step)
        except QAError as error:
            raise gr_error(str(error)) from None
        return self._after(render.report_text(report, self._titles()))

    def remove(self, doc_id: str | None, password: str) -> tuple[str, str, Any]:
        """Admin: remove a document from the index (and its file, if it was uploaded)."""
        self._check(password)
        if not doc_id:
            raise gr_error("请先选择要删除的文档。")
        titles = self._titles()
        try:
            path = Path(self.bot.document(doc_id).path)
            report = self.bot.remove([doc_id])
        except QAError as error:
            raise gr_error(str(error)) from None
        if self.uploads.resolve() in path.resolve().parents and path.exists():
            path.unlink()  # else the next rebuild would add it back
        return self._after(render.report_text(report, titles))


def gr_error(message: str) -> Exception:
    import gradio as gr

    return gr.Error(message)


def build_app(bot: Bot, settings: Settings) -> Any:
    """The Blocks app: a chat tab (with the article panel) and a documents tab."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    chat = Chat(bot, settings)
    titles = [d["title"] for d in chat.documents()]
    admin = bool(settings.admin_password)
    with gr.Blocks(title="文档问答", analytics_enabled=False) as app:
        gr.HTML(render.render_header(bot.encoder_name, bot.encoder_notice), elem_id="qa-header")
        with gr.Tab("对话", id="chat"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=6, min_width=420):
                    chatbot = gr.Chatbot(
                        elem_id="qa-chat", show_label=False, height="68vh", render_markdown=False, autoscroll=False,
                        sanitize_html=True, allow_tags=False, latex_delimiters=[], feedback_options=None,
                        buttons=["copy"], placeholder="向文档库提问，回答会注明出处。",
                        examples=[{"text": q} for q in render.example_questions(titles)],
                    )
                    with gr.Row(elem_id="qa-input"):
                        box = gr.Textbox(placeholder="输入问题，按回车发送", show_label=False, scale=8, autofocus=True,
                                         elem_id="qa-question", max_lines=4)
                        send = gr.Button("发送", variant="primary", scale=1, min_width=70, elem_id="qa-send")
                        new = gr.Button("新对话", variant="secondary", scale=1, min_width=70, elem_id="qa-new")
                with gr.Column(scale=5, min_width=340):
                    article = gr.HTML(render.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。"),
                                      elem_id="qa-article", js_on_load=render.SCROLL_JS, max_height=None)
            cite = gr.Textbox(visible="hidden", elem_id="qa-cite-box")
            opener = gr.Button("open", visible="hidden", elem_id="qa-open")
            data = gr.JSON(visible="hidden")
        with gr.Tab("文档", id="docs"):
            docs_html, choices = chat.doc_view()
            with gr.Row():
                password = gr.Textbox(
                    label="管理员密码",
                    type="password",
                    scale=3,
                    interactive=admin,
                    placeholder="输入后才能上传、删除、重建" if admin else "未设置 QA_ADMIN_PASSWORD，管理功能已关闭",
                )
                unlock = gr.Button("解锁", scale=1, interactive=admin)
            status = gr.Textbox(label="操作结果", interactive=False, lines=3, elem_id="qa-report")
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"上传文档（{'、'.join(_suffixes())}，每个不超过 {settings.max_upload_mb} MB）",
                        file_count="multiple",
                        file_types=_suffixes(),
                        type="filepath",
                        elem_id="qa-upload",
                    )
                    up = gr.Button("上传并加入索引", variant="primary", interactive=False, elem_id="qa-upload-btn")
                with gr.Column():
                    picker = gr.Dropdown(label="选择要删除的文档", choices=choices, value=None, elem_id="qa-picker")
                    rm = gr.Button("删除所选文档", variant="stop", interactive=False, elem_id="qa-remove-btn")
                    rb = gr.Button("重建索引（增量）", interactive=False, elem_id="qa-rebuild-btn")
            listing = gr.HTML(docs_html, elem_id="qa-docs")

        ask_in = [box, chatbot]
        ask_out = [chatbot, data, box, article]
        box.submit(chat.reply, ask_in, ask_out, api_name="chat")
        send.click(chat.reply, ask_in, ask_out, api_visibility="private")
        def pick(event: gr.SelectData) -> str:
            return event.value["text"]

        pick.__annotations__ = {"event": gr.SelectData, "return": str}  # resolvable without module-level gradio

        chatbot.example_select(pick, None, box, api_visibility="private").then(
            chat.reply, ask_in, ask_out, api_visibility="private")
        new.click(lambda: ([], {}, "", render.render_notice("新对话。")), None, ask_out, api_visibility="private")
        opener.click(chat.open_article, [cite, chatbot], article, js="(c, m) => [window.qaCite || c, m]",
                     api_visibility="private")

        def unlocked(pw: str):
            ok = admin_ok(settings, pw)
            msg = "已解锁：可以上传、删除和重建。" if ok else "管理员密码不正确。"
            return (msg, *[gr.Button(interactive=ok)] * 3)

        unlock.click(unlocked, password, [status, up, rm, rb], api_visibility="private")
        password.submit(unlocked, password, [status, up, rm, rb], api_visibility="private")
        admin_out = [status, listing, picker]
        lim: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "admin"}

        def upload(files: list[str] | None, password: str, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
            return chat.upload(files, password, progress)

        def rebuild(password: str, progress=gr.Progress()):  # noqa: B008
            return chat.rebuild(password, progress)

        up.click(upload, [files, password], admin_out, api_name="upload", **lim)
        rm.click(chat.remove, [picker, password], admin_out, api_name="remove", **lim)
        rb.click(rebuild, password, admin_out, api_name="rebuild", **lim)
        app.load(lambda: chat._after("")[1:], None, [listing, picker], api_visibility="private")  # fresh list per visit
        gr.api(chat.ask, api_name="ask")
        gr.api(chat.search, api_name="search")
        gr.api(chat.documents, api_name="documents")
    app.queue(default_concurrency_limit=CONCURRENCY)
    return app


def _suffixes() -> list[str]:
    from .load import SUPPORTED

    return sorted(SUPPORTED)


def launch_options(settings: Settings) -> dict:
    """Everything `launch` needs: local only, no share link, nothing fetched from the internet."""
    import gradio as gr

    fonts = ["PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
             "WenQuanYi Micro Hei", "system-ui", "sans-serif"]
    theme = gr.themes.Soft(primary_hue="teal", neutral_hue="slate", font=fonts,
                           font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        theme=theme,
        css=render.CSS,
        head=render.HEAD,
        max_file_size=f"{settings.max_upload_mb}mb",
        footer_links=["api"],
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        run_history=False,
        show_error=True,
    )


def serve(settings: Settings) -> None:
    """`qa serve` / `python app.py`: build the index if there is none, then run the chat."""
    from .pipeline import Bot
    from .render_text import progress_bars

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    bot = Bot(settings)
    bot.ensure_index(progress_bars(STAGES), say=lambda line: print(line, file=sys.stderr))
    print(f"嵌入模型：{bot.encoder_name}", file=sys.stderr)
    if bot.encoder_notice:
        print(bot.encoder_notice, file=sys.stderr)
    build_app(bot, settings).launch(**launch_options(settings))
