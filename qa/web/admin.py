"""Changing the document library from the web: upload, rebuild and remove, behind the admin password.

An upload reaches the index in steps, each of which may refuse the whole
batch: the password (a wrong guess is charged to the client, see
``guard.Throttle``), the file is one this page uploaded and still waiting in
gradio's upload folder, its name is made safe, its size is within the limit;
then it is copied into the uploads folder without overwriting anything, and
indexed. gradio's temp copies are deleted whatever the outcome: each belongs
to one upload request (``guard.RequestGuard`` gives every request its own
folder), so deleting it never takes another upload's file.

A refused call is one warning line in the server log (address, action,
reason) and never a traceback: anyone can send wrong passwords, and a
traceback per try would let them grow the log thirty lines at a time.
"""

from __future__ import annotations

import dataclasses
import filecmp
import logging
import math
import re
import shutil
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

from ..present import html as page
from ..present.report import summary_chinese
from ..config import KB_NAME, Settings
from ..errors import IndexBusy, QAError, UsageError
from ..kb import DEFAULT, Base
from .chat import Library, documents, public_message, session_keys, text_argument, web_errors
from .guard import Throttle, TrustedClients, discard, hide_paths, inside, same_secret

if TYPE_CHECKING:
    from ..pipeline import Bot

STAGES = {"embed": "嵌入段落", "load": "读取文档", "chunk": "切分段落", "index": "写入索引"}
TEMP_MAX_AGE = 15 * 60  # seconds an upload may wait in gradio's folder for the admin's click
NAME_BYTES = 255  # the longest file name Linux file systems take, in bytes (UTF-8)

log = logging.getLogger("qa.web")


def admin_ok(settings: Settings, password: str | None) -> bool:
    """Admin actions need a configured password, typed correctly (constant-time compare)."""
    expected = settings.admin_password or ""
    return bool(expected) and same_secret(password or "", expected)


def check_password(settings: Settings, throttle: Throttle, trusted: TrustedClients, password: Any,
                   client: str | None, action: str) -> str | None:
    """None if ``password`` is the admin's, else the reason to refuse (logged as one line); wrong
    guesses lock the client out, a right one makes its address trusted for uploads."""
    if not settings.admin_password:
        reason, refusal = "admin disabled (QA_ADMIN_PASSWORD is not set)", \
            "管理功能未启用：请设置环境变量 QA_ADMIN_PASSWORD 后重启。"
    elif (wait := throttle.attempt(client)) > 0:
        reason, refusal = f"locked out after wrong passwords, {math.ceil(wait)} s left", \
            f"管理员密码错误次数过多，请 {math.ceil(wait)} 秒后再试。"
    elif not admin_ok(settings, password if isinstance(password, str) else None):
        reason, refusal = "wrong password", "管理员密码不正确。"
    else:
        throttle.succeeded(client)
        trusted.add(client)
        return None
    log.warning("refused admin %s from %s: %s", action, client or "?", reason)
    return refusal


def supported_suffixes() -> list[str]:
    """The file suffixes ingestion reads, for the upload picker and the name check."""
    from ..load import SUPPORTED

    return sorted(SUPPORTED)


def safe_name(name: str, suffixes: Collection[str]) -> str:
    """A file name safe to create in the uploads folder, from whatever the browser sent.

    Only the last path component survives; anything but letters, digits, CJK,
    ``-_.`` becomes ``_``; the suffix must be one ingestion reads, judged on
    the whole name as sent; the stem is cut so the name fits in NAME_BYTES.
    """
    base = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").split("/")[-1]
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = "." + suffix.lower()
    if suffix not in suffixes:
        shown = base if len(base) <= 60 else base[:30] + "…" + base[-20:]
        raise UsageError(
            f"文件 {shown!r} 的格式不受支持。", f"支持的格式：{'、'.join(sorted(suffixes))}。"
        )
    stem = re.sub(r"[^\w\-.]+", "_", stem, flags=re.UNICODE).strip("._ ") or "upload"
    return fit_name(stem, suffix)


def fit_name(stem: str, suffix: str, limit: int = NAME_BYTES) -> str:
    """``stem + suffix`` with the stem cut (at a character, never inside one) to fit ``limit`` UTF-8 bytes."""
    room = limit - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore").rstrip("._ ")
    return (cut or "upload") + suffix


def upload_folder() -> Path:
    """Where gradio keeps browser uploads (GRADIO_TEMP_DIR; `serve` makes it private to this process)."""
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def gr_error(message: str) -> Exception:
    """A refusal for the browser; gradio prints no traceback for it (see the module docstring)."""
    import gradio as gr

    return gr.Error(message, print_exception=False)


class Admin:
    """The documents tab's event handlers, bound to one Bot; plain methods so tests can call them.

    ``client`` arguments are the caller's address (gr.Request), which the
    password throttle charges; tests pass any string. An address that passes
    the password joins ``trusted``, which the upload guard keeps room for.
    """

    def __init__(self, bot: Bot, settings: Settings, temp_folder: Path | None = None,
                 trusted: TrustedClients | None = None, throttle: Throttle | None = None,
                 base: str = "") -> None:
        """``settings``: the base's (``bot.settings``: its uploads and documents folders); ``throttle``: shared
        by every base's Admin (``Office``), so switching bases does not reset a guesser's count;
        ``base``: the knowledge base named above the documents table."""
        self.bot, self.settings = bot, settings
        self.uploads = settings.uploads_dir
        self._temp = temp_folder
        self.throttle = throttle if throttle is not None else Throttle()
        self.trusted = trusted if trusted is not None else TrustedClients()
        self.base = base

    @property
    def temp_folder(self) -> Path:
        return self._temp or upload_folder()

    def doc_view(self) -> tuple[str, list[tuple[str, str]]]:
        """The documents table and the remove picker's choices (label, doc_id)."""
        docs = documents(self.bot)
        choices = [(f"{d['title']}（{d['doc_id'][:12]}）", d["doc_id"]) for d in docs]
        return page.render_documents(docs, self.base), choices

    def refresh(self) -> tuple[str, Any]:
        """The documents table and a picker that knows the documents as they are now."""
        import gradio as gr

        table, choices = self.doc_view()
        return table, gr.Dropdown(choices=choices, value=None)

    def _after(self, text: str) -> tuple[str, str, Any]:
        """Outputs of an admin action: its report, the refreshed table and picker."""
        return (text, *self.refresh())

    def check_password(self, password: str | None, client: str | None, action: str = "unlock") -> str | None:
        """None if ``password`` is right, else the reason to refuse (logged as one line); wrong
        guesses lock the client out, a right one makes its address trusted for uploads."""
        return check_password(self.settings, self.throttle, self.trusted, password, client, action)

    def _check(self, password: str | None, client: str | None, action: str) -> None:
        refusal = self.check_password(password, client, action)
        if refusal:
            raise gr_error(refusal)

    def _titles(self) -> dict[str, str]:
        return {d["doc_id"]: d["title"] for d in documents(self.bot)}

    def upload(self, files: list[Any] | None, password: str, progress: Any = None,
               client: str | None = None) -> tuple[str, str, Any]:
        """Copy uploaded files into the uploads folder and add them to the index.

        The whole batch is checked before anything is copied; gradio's temp
        copies are deleted whatever the outcome (they are not needed after this).
        """
        items = files if isinstance(files, list) else [files] if files else []
        paths = [_upload_path(item) for item in items]
        try:
            with web_errors(detailed=True):
                self._check(password, client, "upload")
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
                name = safe_name(_original_name(item, path), supported_suffixes())
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
            target = self.uploads / (name if n == 1 else fit_name(stem, f"-{n}{suffix}"))
            if not target.exists() or filecmp.cmp(src, target, shallow=False):
                return target
        raise gr_error(f"上传文件夹里与 {name} 同名的文件过多，请先改名。")

    def rebuild(self, password: str, progress: Any = None, client: str | None = None) -> tuple[str, str, Any]:
        """Bring the index up to date with the seeds and uploads folders."""
        with web_errors(detailed=True):
            self._check(password, client, "rebuild")
            roots = [p for p in (Path(self.settings.seeds_dir), self.uploads) if p.is_dir()]
            if not roots:
                raise gr_error("没有可索引的文件夹（种子文件夹和上传文件夹都不存在）。")
        return self._build(roots, add_only=False, progress=progress)

    def _build(self, paths: list[Path], add_only: bool, progress: Any,
               notes: Sequence[str] = ()) -> tuple[str, str, Any]:
        def step(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress((done, total), desc=STAGES.get(stage, stage))

        with web_errors(detailed=True):
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
        """Remove a document from the index (and its file, if it was uploaded)."""
        with web_errors(detailed=True):
            self._check(password, client, "remove")
            if not doc_id:
                raise gr_error("请先选择要删除的文档。")
            doc_id = text_argument(doc_id, "文档 ID")
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


def _original_name(item: Any, path: Any) -> str:
    """The file's name as the browser sent it, whole (``safe_name`` judges its suffix)."""
    name = getattr(item, "orig_name", None) or (item.get("orig_name") if isinstance(item, dict) else None)
    return str(name or (path if isinstance(path, str) else "?"))


def _label(item: Any, path: Any) -> str:
    """The file's name as the user knows it, for messages (never a server path; shortened)."""
    name = _original_name(item, path)
    return hide_paths(name.replace("\\", "/").rsplit("/", 1)[-1]).replace("\n", " ")[:120]


class Office:
    """The documents tab of whichever knowledge base is picked, and creating and deleting bases.

    Each call opens the picked base through ``Library`` with the session's keys (so a private base is
    managed only from a session holding its key), then hands over to that base's ``Admin``. One password
    throttle serves every base and the create and delete actions alike.
    """

    def __init__(self, library: Library, settings: Settings, trusted: TrustedClients | None = None,
                 temp_folder: Path | None = None) -> None:
        self.library, self.settings = library, settings
        self.throttle = Throttle()
        self.trusted = trusted if trusted is not None else TrustedClients()
        self._temp = temp_folder

    def admin(self, kb: Any, keys: Any) -> Admin:
        """The Admin of base ``kb``; ``NoBase`` when this session may not read it."""
        bot = self.library.open(kb, keys)
        named = kb if self.library.several() else ""
        return Admin(bot, bot.settings, self._temp, self.trusted, self.throttle, base=named)

    def check_password(self, password: Any, client: str | None, action: str = "unlock") -> str | None:
        return check_password(self.settings, self.throttle, self.trusted, password, client, action)

    def _check(self, password: Any, client: str | None, action: str) -> None:
        refusal = self.check_password(password, client, action)
        if refusal:
            raise gr_error(refusal)

    def doc_view(self, kb: Any, keys: Any) -> tuple[str, list[tuple[str, str]]]:
        try:
            return self.admin(kb, keys).doc_view()
        except QAError as error:
            return page.render_notice(public_message(error)), []

    def refresh(self, kb: Any, keys: Any) -> tuple[str, Any]:
        import gradio as gr

        table, choices = self.doc_view(kb, keys)
        return table, gr.Dropdown(choices=choices, value=None)

    def upload(self, files: list[Any] | None, password: str, kb: Any, keys: Any, progress: Any = None,
               client: str | None = None) -> tuple[str, str, Any]:
        try:
            with web_errors():
                admin = self.admin(kb, keys)
        except Exception:
            items = files if isinstance(files, list) else [files] if files else []
            discard([p for p in map(_upload_path, items) if isinstance(p, str)], self._temp or upload_folder())
            raise
        return admin.upload(files, password, progress, client)

    def rebuild(self, password: str, kb: Any, keys: Any, progress: Any = None,
                client: str | None = None) -> tuple[str, str, Any]:
        with web_errors():
            admin = self.admin(kb, keys)
        return admin.rebuild(password, progress, client)

    def remove(self, doc_id: str | None, password: str, kb: Any, keys: Any,
               client: str | None = None) -> tuple[str, str, Any]:
        with web_errors():
            admin = self.admin(kb, keys)
        return admin.remove(doc_id, password, client)

    def create(self, name: Any, title: Any, private: Any, password: str, keys: Any,
               client: str | None = None) -> tuple[str, Base, dict[str, str]]:
        """A new empty base: (the report, the base, the session's keys with a private base's key added).

        A private base's key is in the report, once: only its hash is kept (``qa kb key NAME`` replaces it)."""
        bases = self.library.bases
        with web_errors(detailed=True):
            self._check(password, client, "create a knowledge base")
            name = text_argument(name, "知识库名称").strip()
            if not KB_NAME.fullmatch(name):
                raise gr_error("知识库名称只能用字母、数字、- 和 _，1 到 64 个字符，例如 hr-rules。")
            taken = {b.name.lower(): b.name for b in bases.all()}
            if name.lower() in taken:
                raise gr_error(f"已有名为 {taken[name.lower()]} 的知识库（名称不区分大小写），请换一个名称。")
            base, key = bases.create(name, text_argument(title, "标题"), private is True)
        log.info("created knowledge base %s (%s) from %s", base.name, "private" if key else "public", client or "?")
        lines = [f"已创建{'私有' if key else ''}知识库 {base.name}{'（' + base.title + '）' if base.title else ''}，"
                 "现在是空的：在下方上传文档即可。"]
        if key:
            lines.append(f"密钥（只显示这一次，请立即保存；丢失后可在服务器上用 qa kb key {base.name} 换一个）：{key}")
        return "\n".join(lines), base, {**session_keys(keys), **({base.name: key} if key else {})}

    def delete(self, kb: Any, confirm: Any, password: str, keys: Any, client: str | None = None) -> str:
        """Delete the picked base ``kb`` (never ``default``) once its name is typed into ``confirm``."""
        with web_errors(detailed=True):
            self._check(password, client, "delete a knowledge base")
            base = self.library.base(kb, keys)
            if base.name == DEFAULT:
                raise gr_error("默认知识库 default 不能删除；要清空它，请逐篇删除其中的文档。")
            if not isinstance(confirm, str) or confirm.strip() != base.name:
                raise gr_error(f"请在确认框中输入要删除的知识库名称 {base.name}，再点删除。")
            try:
                self.library.bases.delete(base.name)
            except IndexBusy:
                raise gr_error(f"知识库 {base.name} 正在构建，请等构建结束后再删除。") from None
        log.info("deleted knowledge base %s from %s", base.name, client or "?")
        return f"已删除知识库 {base.name} 及其全部文档和索引。"
