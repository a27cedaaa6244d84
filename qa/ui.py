"""The web chat (the only gradio importer): chat with cited passages, and document admin.

gradio is imported inside functions so ``qa --help`` stays instant. All HTML
comes from ``qa/present/html.py``, which escapes every piece of document text; the chat
component additionally sanitises. A click on a citation ``[n]`` is caught by a
small page script (``present.html.HEAD``) that hands the citation to a hidden button,
whose event opens the article in the side panel and scrolls the cited span into view.
"""

from __future__ import annotations

import dataclasses
import filecmp
import html
import ipaddress
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterator, Sequence

from .config import Settings
from .errors import IndexMissing, IndexUnavailable, QAError, UsageError
from .guard import UPLOAD_QUOTA_FACTOR, RequestGuard, Throttle, discard, hide_paths, inside, same_secret
from .present import html as page
from .present import is_valid
from .present.json import public_json
from .present.report import summary_chinese
from .segment import keywords

if TYPE_CHECKING:
    from .pipeline import Bot

CONCURRENCY = 4  # questions answered at once; the Bot is thread-safe for reads
STAGES = {"embed": "嵌入段落", "load": "读取文档", "chunk": "切分段落", "index": "写入索引"}
TEMP_MAX_AGE = 15 * 60  # seconds an upload may wait in gradio's folder for the admin's click
GENERIC_ERROR = "服务器内部错误，请稍后再试；详细信息已记录在服务器日志中。"

log = logging.getLogger("qa.web")


def admin_ok(settings: Settings, password: str | None) -> bool:
    """Admin actions need a configured password, typed correctly (constant-time compare)."""
    expected = settings.admin_password or ""
    return bool(expected) and same_secret(password or "", expected)


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


def public_message(error: BaseException) -> str:
    """What a web user may read about a failure: a QAError's own line without server paths,
    else a generic line (the details go to the server log)."""
    if isinstance(error, QAError):
        return hide_paths(str(error))
    log.error("unexpected error in a web handler", exc_info=error)
    return GENERIC_ERROR


@contextmanager
def web_errors() -> Iterator[None]:
    """Every failure of a handler reaches the browser as one gr.Error line (see public_message)."""
    import gradio as gr

    try:
        yield
    except gr.Error:
        raise
    except Exception as error:  # noqa: BLE001 - the point: nothing raw reaches a web user
        raise gr.Error(public_message(error)) from None


def upload_folder() -> Path:
    """Where gradio keeps browser uploads (GRADIO_TEMP_DIR; `serve` makes it private to this process)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"{what}必须是文本。")
    return value


def _history(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise UsageError("history 必须是由问题文本组成的列表。")
    return value


class Chat:
    """The event handlers, bound to one Bot; plain methods so tests can call them.

    ``client`` arguments are the caller's address (gr.Request), which the
    password throttle charges; tests pass any string.
    """

    def __init__(self, bot: Bot, settings: Settings, temp_folder: Path | None = None) -> None:
        self.bot, self.settings = bot, settings
        self.uploads = settings.uploads_dir
        self._temp = temp_folder
        self.throttle = Throttle()

    @property
    def temp_folder(self) -> Path:
        return self._temp or upload_folder()

    # -- chat ----------------------------------------------------------------
    def reply(self, message: str, messages: list[dict] | None) -> tuple[list[dict], dict, str, str]:
        """One chat turn: (messages, answer JSON, cleared input, article panel)."""
        messages = list(messages or [])
        question = (message or "").strip() if isinstance(message, str) else ""
        if not question:
            return messages, {}, "", page.render_notice("请输入问题。")
        panel = page.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。")
        try:
            answer = self.bot.ask(question, page.earlier_questions(messages))
            words = keywords(answer.query)
            content, data = page.render_answer(answer, words), public_json(answer)
            valid = [h for h in answer.hits if is_valid(h)]
            if valid and not answer.abstained:
                top = valid[0]
                panel = page.render_article(top.document, top.passage.start, top.passage.end, words)
        except Exception as error:  # noqa: BLE001 - shown as one line in the chat, details logged
            text = public_message(error)
            content, data = f'<p class="qa-error">{page.esc(text)}</p>', {"error": text}
        messages += [
            {"role": "user", "content": html.escape(question)},
            {"role": "assistant", "content": content},
        ]
        return messages, data, "", panel

    def open_article(self, cite: str, messages: list[dict] | None = None) -> str:
        """The article behind a citation link, with the cited span marked."""
        parsed = page.parse_cite(cite) if isinstance(cite, str) else None
        if parsed is None:
            return page.render_notice("无法识别这个引用。")
        doc_id, start, end = parsed
        try:
            doc = self.bot.document(doc_id)
        except QAError:
            return page.render_notice("这篇文档已不在文档库中。")
        except Exception as error:  # noqa: BLE001
            return page.render_notice(public_message(error))
        if end > len(doc.text):
            return page.render_notice("引用位置超出了文档范围，文档可能已更新，请重新提问。")
        questions = page.earlier_questions(messages or [])
        words = keywords(questions[-1]) if questions else []
        return page.render_article(doc, start, end, words)

    def ask(self, question: str, history: list[str] | None = None) -> dict:
        """API: the `qa ask --json` answer to a question; history = earlier questions."""
        with web_errors():
            return public_json(self.bot.ask(_text(question, "问题"), _history(history)))

    def search(self, query: str, k: int = 5) -> dict:
        """API: the top-k passages for a query, no follow-up folding; same shape as ask."""
        with web_errors():
            if not isinstance(k, int):
                raise UsageError("k 必须是整数。")
            return public_json(self.bot.ask(_text(query, "检索词"), [], k=max(1, k)))

    # -- documents -------------------------------------------------------------
    def documents(self) -> list[dict]:
        """API: the indexed documents (title, source, date, passages, doc_id)."""
        with web_errors():
            try:
                infos = self.bot.documents()
            except (IndexMissing, IndexUnavailable):  # a served index that is down: the chat says so when asked
                return []
        keys = ("doc_id", "title", "source", "date", "url", "passages")
        return [{k: getattr(info, k, None) for k in keys} for info in infos]

    def doc_view(self) -> tuple[str, list[tuple[str, str]]]:
        """The documents table and the remove picker's choices (label, doc_id)."""
        docs = self.documents()
        return page.render_documents(docs), [(f"{d['title']}（{d['doc_id'][:12]}）", d["doc_id"]) for d in docs]

    def refresh(self) -> tuple[str, Any]:
        """The documents table and a picker that knows the documents as they are now."""
        import gradio as gr

        table, choices = self.doc_view()
        return table, gr.Dropdown(choices=choices, value=None)

    def _after(self, text: str) -> tuple[str, str, Any]:
        """Outputs of an admin action: its report, the refreshed table and picker."""
        return (text, *self.refresh())

    def check_password(self, password: str | None, client: str | None) -> str | None:
        """None if ``password`` is right, else the reason to refuse; wrong guesses lock the client out."""
        if not self.settings.admin_password:
            return "管理功能未启用：请设置环境变量 QA_ADMIN_PASSWORD 后重启。"
        wait = self.throttle.attempt(client)
        if wait > 0:
            return f"管理员密码错误次数过多，请 {math.ceil(wait)} 秒后再试。"
        if not admin_ok(self.settings, password if isinstance(password, str) else None):
            return "管理员密码不正确。"
        self.throttle.succeeded(client)
        return None

    def _check(self, password: str | None, client: str | None) -> None:
        refusal = self.check_password(password, client)
        if refusal:
            raise gr_error(refusal)

    def _titles(self) -> dict[str, str]:
        return {d["doc_id"]: d["title"] for d in self.documents()}

    def upload(self, files: list[Any] | None, password: str, progress: Any = None,
               client: str | None = None) -> tuple[str, str, Any]:
        """Admin: copy uploaded files into the uploads folder and add them to the index.

        The whole batch is checked before anything is copied; gradio's temp
        copies are deleted whatever the outcome (they are not needed after this).
        """
        items = files if isinstance(files, list) else [files] if files else []
        paths = [_upload_path(item) for item in items]
        try:
            with web_errors():
                self._check(password, client)
                if not paths:
                    raise gr_error("请先选择要上传的文件。")
                batch = self._validate(items, paths)
                saved, created, notes = self._store(batch)
        finally:
            discard([p for p in paths if isinstance(p, str)], self.temp_folder)
        try:
            return self._build(saved, add_only=True, progress=progress, notes=notes)
        except Exception:
            for path in created:  # nothing of this batch got indexed: keep nothing a rebuild would trip over
                path.unlink(missing_ok=True)
            raise

    def _validate(self, files: list[Any], paths: list[Any]) -> list[tuple[Path, str]]:
        """(temp file, safe name) for every file, or one refusal for the whole batch."""
        from .load import SUPPORTED

        limit = self.settings.max_upload_mb * 1024 * 1024
        batch = []
        for item, path in zip(files, paths, strict=True):
            label = _label(item, path)
            if not isinstance(path, str) or not inside(path, self.temp_folder):
                raise gr_error(f"文件《{label}》不是通过本页面上传的，已拒绝；本批文件均未保存。")
            src = Path(path)
            if not src.is_file() or src.is_symlink():
                raise gr_error(f"文件《{label}》已不在上传临时文件夹中（可能已过期），请重新选择；本批文件均未保存。")
            try:
                name = safe_name(label, sorted(SUPPORTED))
            except UsageError as error:
                raise gr_error(f"{error} 本批文件均未保存。") from None
            if src.stat().st_size > limit:
                raise gr_error(f"文件《{label}》超过上传上限 {self.settings.max_upload_mb} MB；本批文件均未保存。")
            batch.append((src, name))
        return batch

    def _store(self, batch: list[tuple[Path, str]]) -> tuple[list[Path], list[Path], list[str]]:
        """Copy into uploads/ without overwriting anything: a different file under the same
        name is saved under a new one (and said so); the same bytes again are left as they are.
        Returns (files to index, files this batch created, notes for the reply)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        created: list[Path] = []
        saved: list[Path] = []
        notes: list[str] = []
        try:
            for src, name in batch:
                target, wanted = self._free_name(src, name), self.uploads / name
                if target.exists():  # identical to a file already uploaded
                    notes.append(f"《{name}》与已上传的同名文件内容相同，未重复保存。")
                else:
                    with open(src, "rb") as data, open(target, "xb") as out:
                        created.append(target)
                        shutil.copyfileobj(data, out)
                    if target != wanted:
                        notes.append(f"已有不同内容的文件 {name}，新文件另存为 {target.name}（未覆盖；"
                                     "要替换旧文件，请先删除旧文档再上传）。")
                if target not in saved:
                    saved.append(target)
        except OSError as error:
            for path in created:
                path.unlink(missing_ok=True)
            log.error("saving an upload failed", exc_info=error)
            raise gr_error("保存上传文件失败（磁盘空间不足或没有写权限？）；本批文件均未保存。") from None
        return saved, created, notes

    def _free_name(self, src: Path, name: str) -> Path:
        """``name`` in uploads/ if free or holding the same bytes, else ``stem-2.suffix``, ``-3`` ..."""
        stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
        for n in range(1, 10_000):
            target = self.uploads / (name if n == 1 else f"{stem}-{n}{suffix}")
            if not target.exists() or filecmp.cmp(src, target, shallow=False):
                return target
        raise gr_error(f"上传文件夹里与 {name} 同名的文件过多，请先改名。")

    def rebuild(self, password: str, progress: Any = None, client: str | None = None) -> tuple[str, str, Any]:
        """Admin: bring the index up to date with the seeds and uploads folders."""
        with web_errors():
            self._check(password, client)
            roots = [p for p in (Path(self.settings.seeds_dir), self.uploads) if p.is_dir()]
            if not roots:
                raise gr_error("没有可索引的文件夹（种子文件夹和上传文件夹都不存在）。")
        return self._build(roots, add_only=False, progress=progress)

    def _build(self, paths: list[Path], add_only: bool, progress: Any,
               notes: Sequence[str] = ()) -> tuple[str, str, Any]:
        def step(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress((done, total), desc=STAGES.get(stage, stage))

        with web_errors():
            report = self.bot.build(paths, add_only=add_only, progress=step)
            dropped = self._drop_unreadable(report)
            # a reader's own error text may quote the file's full path; titles keep their slashes
            skipped = [dataclasses.replace(s, reason=hide_paths(s.reason)) for s in report.skipped]
            lines = [summary_chinese(dataclasses.replace(report, skipped=skipped), self._titles()), *notes]
            if dropped:
                lines.append(f"无法读取的上传文件已从上传文件夹删除：{'、'.join(dropped)}")
            return self._after("\n".join(lines))

    def _drop_unreadable(self, report: Any) -> list[str]:
        """Delete uploads the build skipped: kept, they would fail every later rebuild."""
        dropped = []
        for skip in report.skipped:
            path = Path(skip.path)
            if inside(path, self.uploads) and path.is_file():
                path.unlink()
                dropped.append(path.name)
        return dropped

    def remove(self, doc_id: str | None, password: str, client: str | None = None) -> tuple[str, str, Any]:
        """Admin: remove a document from the index (and its file, if it was uploaded)."""
        with web_errors():
            self._check(password, client)
            if not doc_id:
                raise gr_error("请先选择要删除的文档。")
            doc_id = _text(doc_id, "文档 ID")
            titles = self._titles()
            path = Path(self.bot.document(doc_id).path)
            report = self.bot.remove([doc_id])
            if inside(path, self.uploads) and path.exists():
                path.unlink()  # else the next rebuild would add it back
            return self._after(summary_chinese(report, titles))


def _upload_path(item: Any) -> Any:
    """The server-side path of one upload as gradio hands it over (a FileData dict; a str in tests)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return item.get("path")
    return getattr(item, "path", None) or getattr(item, "name", None)


def _label(item: Any, path: Any) -> str:
    """The file's name as the user knows it, for messages (never a server path)."""
    name = getattr(item, "orig_name", None) or (item.get("orig_name") if isinstance(item, dict) else None)
    name = name or (path if isinstance(path, str) else "?")
    return hide_paths(str(name).replace("\\", "/").rsplit("/", 1)[-1]).replace("\n", " ")[:120]


def gr_error(message: str) -> Exception:
    import gradio as gr

    return gr.Error(message)


def exposure_warning(settings: Settings) -> str | None:
    """What a non-loopback address opens up, said at start; None on a loopback address."""
    if _loopback(settings.host):
        return None
    admin = ("upload, remove and rebuild are open to anyone who types QA_ADMIN_PASSWORD "
             f"(wrong passwords lock the client out for up to {int(Throttle.CAP)} s)"
             if settings.admin_password else "upload, remove and rebuild are disabled (QA_ADMIN_PASSWORD is not set)")
    return (
        f"Warning: listening on {settings.host}:{settings.port}, reachable from other machines. "
        "Anyone who can reach it can ask questions and read every indexed document "
        "(the chat and the /ask, /search, /documents API); "
        f"{admin}. Anyone can also send files to the temporary upload folder (at most "
        f"{UPLOAD_QUOTA_FACTOR * settings.max_upload_mb} MB, deleted after use or {TEMP_MAX_AGE // 60} minutes). "
        "There is no TLS: put a reverse proxy with HTTPS in front, or use --host 127.0.0.1."
    )


def _loopback(host: str) -> bool:
    if host.strip("[]").lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def build_app(bot: Bot, settings: Settings) -> Any:
    """The Blocks app: a chat tab (with the article panel) and a documents tab."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio as gr

    chat = Chat(bot, settings)
    titles = [d["title"] for d in chat.documents()]
    admin = bool(settings.admin_password)
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
                with gr.Column(scale=5, min_width=340):
                    article = gr.HTML(page.render_notice("点击回答中的引用编号 [1]、[2]… 查看原文。"),
                                      elem_id="qa-article", js_on_load=page.SCROLL_JS, max_height=None)
            cite = gr.Textbox(visible="hidden", elem_id="qa-cite-box")
            opener = gr.Button("open", visible="hidden", elem_id="qa-open")
            data = gr.JSON(visible="hidden")
        with gr.Tab("文档", id="docs") as docs_tab:
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
                    # custom values: an id is checked by the handler against the index as it is now, not
                    # against the choices this page was launched with (a new API session has only those)
                    picker = gr.Dropdown(label="选择要删除的文档", choices=choices, value=None, elem_id="qa-picker",
                                         allow_custom_value=True)
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
        new.click(lambda: ([], {}, "", page.render_notice("新对话。")), None, ask_out, api_visibility="private")
        opener.click(chat.open_article, [cite, chatbot], article, js="(c, m) => [window.qaCite || c, m]",
                     api_visibility="private")

        def takes_request(fn):
            """gradio finds the gr.Request parameter by its annotation, which must be the class itself."""
            fn.__annotations__ = {**fn.__annotations__, "request": gr.Request}
            return fn

        @takes_request
        def unlocked(pw: str, request: gr.Request):
            with web_errors():
                refusal = chat.check_password(pw, _host(request))
            return (refusal or "已解锁：可以上传、删除和重建。", *[gr.Button(interactive=not refusal)] * 3)

        unlock.click(unlocked, password, [status, up, rm, rb], api_visibility="private")
        password.submit(unlocked, password, [status, up, rm, rb], api_visibility="private")
        admin_out = [status, listing, picker]
        lim: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "admin"}

        @takes_request
        def upload(files: list[dict] | None, password: str, request: gr.Request,
                   progress=gr.Progress()):  # noqa: B008 (gradio injects it)
            return chat.upload(files, password, progress, client=_host(request))

        @takes_request
        def rebuild(password: str, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            return chat.rebuild(password, progress, client=_host(request))

        @takes_request
        def remove(doc_id: str | None, password: str, request: gr.Request):
            return chat.remove(doc_id, password, client=_host(request))

        # preprocess=False: the handler gets gradio's FileData dicts as they are (path, orig_name); gr.File's
        # own preprocessing leaves an empty temp file behind per file and call, even for a wrong password.
        # The temp files are gone after an upload, whatever its outcome: clear the file picker too.
        up.click(upload, [files, password], admin_out, api_name="upload", preprocess=False, **lim).then(
            lambda: None, None, files, api_visibility="private")
        rm.click(remove, [picker, password], admin_out, api_name="remove", **lim)
        rb.click(rebuild, password, admin_out, api_name="rebuild", **lim)
        # the list and the picker follow the index on every visit and every return to the tab, so
        # changes made from another browser or the CLI show up without reloading the page
        app.load(chat.refresh, None, [listing, picker], api_visibility="private")
        docs_tab.select(chat.refresh, None, [listing, picker], api_visibility="private")
        gr.api(chat.ask, api_name="ask")
        gr.api(chat.search, api_name="search")
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


def _suffixes() -> list[str]:
    from .load import SUPPORTED

    return sorted(SUPPORTED)


def launch_options(settings: Settings) -> dict:
    """Everything `launch` needs: local only, no share link, nothing fetched from the internet,
    raw exception text never sent to a browser (show_error=False; gr.Error lines still are),
    and the RequestGuard in front of every route. The guard sweeps the upload folder, so call
    this after `private_upload_folder` (as `serve` does), never with a shared /tmp/gradio."""
    import gradio as gr
    from starlette.middleware import Middleware

    fonts = ["PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
             "WenQuanYi Micro Hei", "system-ui", "sans-serif"]
    theme = gr.themes.Soft(primary_hue="teal", neutral_hue="slate", font=fonts,
                           font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"])
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        theme=theme,
        css=page.CSS,
        head=page.HEAD,
        max_file_size=f"{settings.max_upload_mb}mb",
        footer_links=["api"],
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        run_history=False,
        show_error=False,
        app_kwargs={
            "middleware": [
                Middleware(
                    RequestGuard,
                    folder=upload_folder(),
                    max_age=TEMP_MAX_AGE,
                    max_file_bytes=settings.max_upload_mb * 1024 * 1024,
                )
            ]
        },
    )


def serve(settings: Settings) -> None:
    """`qa serve` / `python app.py`: build the index if there is none, then run the chat."""
    from .pipeline import Bot
    from .present.terminal import progress_bars

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    warning = exposure_warning(settings)
    if warning:
        print(warning, file=sys.stderr)
    stop_on_sigterm()
    private_upload_folder()
    bot = Bot(settings)
    bot.ensure_index(progress_bars(STAGES), say=lambda line: print(line, file=sys.stderr))
    print(f"嵌入模型：{bot.encoder_name}", file=sys.stderr)
    if bot.encoder_notice:
        print(bot.encoder_notice, file=sys.stderr)
    app = build_app(bot, settings)
    try:
        app.launch(**launch_options(settings))
    except KeyboardInterrupt:  # a stop that came before gradio's own wait loop, which handles later ones
        app.close()


def stop_on_sigterm() -> None:
    """Let SIGTERM (systemd, docker stop, kill) stop the chat the way Ctrl-C does.

    Python's default SIGTERM ends the process without running ``atexit``, so every
    restart by a service manager would leave its upload folder behind in /tmp.
    As KeyboardInterrupt, gradio closes its server and the cleanup runs; a build
    under way stops as it does on Ctrl-C (the index stays as it was).
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def private_upload_folder() -> Path:
    """A fresh upload folder for this process (inside GRADIO_TEMP_DIR if set), removed at exit.

    The RequestGuard accepts only files in it and counts what it holds, and
    the upload handler deletes from it: none of that may touch another
    gradio app's files in a shared /tmp/gradio.
    """
    import atexit

    parent = os.environ.get("GRADIO_TEMP_DIR") or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="qa-uploads-", dir=parent)
    os.environ["GRADIO_TEMP_DIR"] = folder
    atexit.register(shutil.rmtree, folder, True)
    return Path(folder)
