"""From raw article text to a clean ``Document``: furniture out, metadata in.

Why general rules and position: scraped articles carry site furniture
(menus, breadcrumbs, banners, share prompts, disclaimers, footers, editor
credits, image file names) that would otherwise end up in cited passages.
Furniture sits before the article's first real paragraph or after its last
one, so those zones get the full rule set; between them a line must look
like furniture *and* not like a sentence, so that no body fact is lost.
Title, source, date and URL are read from the title block and byline, which
are metadata and leave the body.

Control characters and terminal escapes are removed here, at ingestion, so
the index never holds them and every consumer (terminal, browser, JSON API)
gets clean text; the printers strip them again for indexes built before.
Only http(s) addresses are kept as a document's URL.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from .errors import LoadError
from .text import CJK, one_line, printable
from .types import Document, RawText, text_hash

_SENTENCE_END = "。！？!?；;…"
_SPACES = re.compile(r"[ \t\xa0\u3000\u2002\u2003\u2009\u200b\ufeff]+")

# Patterns that mark furniture. Each is checked together with line shape/position.
_COPYRIGHT = re.compile(
    r"©|\(c\)\s*\d{4}|copyright|all rights reserved|版权所有|版權所有|版权声明|ICP[备證证]|公网安备|网安备"
    r"|^\S.{0,40}\s主办(\s|$)",
    re.I,
)
_CREDIT = re.compile(
    r"^[(（\[【]?\s*(责任编辑|責任編輯|责编|責編|编辑|編輯|主编|审核|审校|校对|终审|初审|监制|值班编辑|美编|编审)\s*([:：\s][^。!?！？]{0,30})?[)）\]】]?$"
)
_TRAILING_CREDIT = re.compile(
    r"\s*[(（\[【]\s*(责任编辑|責任編輯|责编|責編|编辑|編輯)\s*[:：][^()（）\[\]【】]{0,20}[)）\]】]\s*$"
)
_IMAGE = re.compile(
    r"^(\[?(图片|图|image|img|photo|pic)\s*\d*\]?|[\w\s\-.()（）]{0,60}\.(png|jpe?g|gif|bmp|webp|svg|tiff?))$", re.I
)
_SHARE = re.compile(
    r"二维码|扫一扫|扫码关注|扫描.{0,6}关注|分享到|长按.{0,8}识别|关注.{0,6}(公众号|官方微信|微信号|微博)|点击.{0,6}(关注|分享|收藏)|打印本页|关闭窗口|返回顶部|上一篇|下一篇"
)
_DISCLAIMER = re.compile(
    r"温馨提示|免责声明|本站不承担|本网不承担|不代表本(站|网)|仅供参考|如有侵权|侵犯了?您?贵?[司方]?的?版权|转载请注明|版权归原作者|后果自负"
)
_WELCOME = re.compile(r"欢迎.{0,4}(来到|访问|光临|登录|进入)|^welcome\b", re.I)
_BREADCRUMB_SEP = re.compile(r"\s*(?:>|»|›|＞|→|>>)\s*")
_LOCATION = re.compile(r"^(当前位置|您的位置|你的位置|所在位置|位置)\s*[:：]")
_URL_LINE = re.compile(r"(原文地址|原文链接|本文链接|本文地址|原文网址|文章来源|来源网址).{0,200}?(https?://[^\s\"'<>，。）)]+)")
_URL = re.compile(r"https?://[^\s\"'<>，。）)]+")
_META_KEYS = re.compile(
    r"(来源|來源|来源于|稿源|出处|作者|记者|記者|通讯员|发布时间|發布時間|發佈時間|发布日期|发表时间|更新时间|时间|時間|日期|浏览|阅读|点击|字号|本站原创|原创)\s*[:：]|本站原创|浏览次数|阅读量|点击数|字号\s*[:：]?\s*[大中小]"
)
_SOURCE = re.compile(
    r"(?:来源|來源|来源于|稿源|出处|文章来源)\s*[:：]\s*([^\s|｜:：,，()（）]+?)(?=\s|$|[|｜,，()（）]|作者|记者|記者|发布|發布|發佈|时间|時間|日期|编辑|編輯)"
)
_SUMMARY = re.compile(r"^(摘要|导读|内容提要|提要|核心提示)\s*[:：]\s*")
_DATE_PATTERNS = (
    re.compile(r"(?<!\d)((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"),
    re.compile(r"(?<!\d)((?:19|20)\d{2})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?:T\d|$)"),
)


def to_document(raw: RawText) -> Document:
    """Clean one ``RawText``; raise ``LoadError`` when no body text remains."""
    path = str(location(raw.path))
    # Classify on a whitespace-normalised copy, but keep body lines verbatim (stripped only),
    # so that text quoted from the article matches the cleaned text exactly.
    verbatim = [part.strip() for part in printable(raw.text).split("\n") if part.strip()]
    lines = [_normalise_line(line) for line in verbatim]
    name = one_line(Path(raw.path).name)
    hint_title = _one_line_meta(raw.title)
    if not lines:
        raise LoadError(f"{name}: no text found.", "Check the file has article text in it.")
    first, last = _body_bounds(lines)
    title, title_index, meta = _title_block(lines, first, hint_title)
    source = date = url = None
    keep: list[str] = []
    head_summary: list[str] = []
    for index, line in enumerate(lines):
        edge = index < first or index > last
        if index <= title_index or (title is not None and index < first and line == title):
            continue  # the title block (and a title repeated before the body) is metadata
        match = _URL_LINE.search(line) if edge or len(line) < 250 else None
        if match:
            url = url or match.group(2)
            continue
        if index in meta:
            source = source or _source(line)
            date = date or normalise_date(line)
            continue
        if edge and _SUMMARY.match(line):
            head_summary.append(_SUMMARY.sub("", line))
            continue
        if _is_furniture(line, edge):
            if edge and _META_KEYS.search(line) and len(line) <= 80:
                source = source or _source(line)
            continue
        keep.append(_TRAILING_CREDIT.sub("", verbatim[index]))
    body = "\n\n".join(line for line in keep if line)
    for summary in head_summary:  # a summary that does not repeat the body is body text
        probe = summary.rstrip(".…")[:30]
        if probe and probe not in body:
            body = summary + ("\n\n" + body if body else "")
    if not body.strip():
        raise LoadError(
            f"{name}: no article text is left after removing page furniture.", "Check that the file holds an article."
        )
    if raw.date:
        date = normalise_date(raw.date) or date
    return Document(
        doc_id=make_doc_id(path),
        path=path,
        title=title or hint_title or _one_line_meta(Path(raw.path).stem) or "untitled",
        text=body,
        content_hash=text_hash(body),
        source=_one_line_meta(source),
        date=date,
        url=safe_url(raw.url) or safe_url(url),
    )


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) address, else None.

    A page's og:url or canonical link is attacker-chosen text: a
    ``javascript:`` or ``data:`` address must never become a link a reader
    can click. Browsers ignore tabs and newlines inside a URL
    (``java\tscript:``), so any whitespace or control character disqualifies it.
    """
    if not url:
        return None
    url = url.strip()
    if not url or any(char.isspace() or not char.isprintable() for char in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def location(path: str | Path) -> Path:
    """The absolute path a document is known by: folders resolved, the file's own name kept.

    Not ``resolve()``: a followed symbolic link must be known by its own
    path, so that deleting the link removes its document on the next build.
    For a regular file this is the same as ``resolve()``.
    """
    path = Path(path).absolute()
    return path.parent.resolve() / path.name


def _one_line_meta(value: str | None) -> str | None:
    """Metadata (title, source) as one clean line; None when nothing is left."""
    if not value:
        return None
    value = _SPACES.sub(" ", printable(value).replace("\n", " ").replace("\t", " ")).strip()
    return value or None


def make_doc_id(path: str | Path) -> str:
    """Readable and stable: a slug of the file name plus a short hash of the full path."""
    resolved = str(location(path))
    slug = re.sub(r"[^\w]+", "-", Path(resolved).stem.lower()).strip("-")[:40] or "doc"
    return f"{slug}-{hashlib.sha1(resolved.encode('utf-8')).hexdigest()[:8]}"


def normalise_date(text: str) -> str | None:
    """The first valid date in ``text`` as YYYY-MM-DD (Chinese and ISO shapes), or None."""
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            year, month, day = (int(group) for group in match.groups())
            if 1 <= month <= 12 and 1 <= day <= 31:
                return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def _normalise_line(line: str) -> str:
    return _SPACES.sub(" ", line).strip()


def _cjk_count(line: str) -> int:
    return len(CJK.findall(line))


def _is_paragraph(line: str) -> bool:
    """A line that is clearly article prose: long, and made of sentences."""
    ends = sum(line.count(mark) for mark in "。！？!?；;")
    return (_cjk_count(line) >= 20 and ends >= 1) or (len(line.split()) >= 25 and line.count(". ") >= 2)


def _body_bounds(lines: list[str]) -> tuple[int, int]:
    """Index of the first and last prose paragraph that is not itself furniture."""
    prose = [i for i, line in enumerate(lines) if _is_paragraph(line) and not _furniture_markers(line)]
    if not prose:
        return len(lines), len(lines) - 1  # no prose: every line counts as edge
    return prose[0], prose[-1]


def _furniture_markers(line: str) -> bool:
    return bool(
        _SUMMARY.match(line)
        or _DISCLAIMER.search(line)
        or _COPYRIGHT.search(line)
        or _URL_LINE.search(line)
        or _WELCOME.search(line)
    )


def _is_sentence(line: str) -> bool:
    return any(mark in line for mark in "。！？") or (_cjk_count(line) >= 20 and line[-1] in _SENTENCE_END)


def _is_furniture(line: str, edge: bool) -> bool:
    """Furniture by line shape and pattern; outside the edges only short non-sentences."""
    short = len(line) <= 40 and not _is_sentence(line)
    if _CREDIT.match(line) or _IMAGE.match(line):
        return True
    if _is_breadcrumb(line) or (edge and _is_menu(line)):
        return True
    if _COPYRIGHT.search(line) and (edge or short):
        return True
    if _SHARE.search(line) and ((edge and len(line) <= 80) or short):
        return True
    if _DISCLAIMER.search(line) and (edge or (short and "本站" in line)):
        return True
    if _WELCOME.search(line) and len(line) <= 60 and (edge or short):
        return True
    if edge and _META_KEYS.search(line) and len(line) <= 80 and not _is_sentence(line):
        return True
    return False


def _is_breadcrumb(line: str) -> bool:
    if _LOCATION.match(line) and len(line) <= 120:
        return True
    parts = _BREADCRUMB_SEP.split(line)
    return len(parts) >= 3 and len(line) <= 150 and not any(mark in line for mark in "。！？") and all(parts)


def _is_menu(line: str) -> bool:
    """Many short space/bar-separated items and no punctuation: a navigation bar."""
    items = [item for item in re.split(r"[\s|｜]+", line) if item]
    if len(items) < 4 or any(mark in line for mark in "。，,！？!?:：;；"):
        return False
    if sum(bool(CJK.search(item)) for item in items) < 0.6 * len(items):
        return False  # Latin title case ("This Is Where I Came In") is not a menu; HTML menus go by tag
    lengths = [len(item) for item in items]
    return max(lengths) <= 8 and sum(lengths) / len(lengths) <= 5


def _is_meta(line: str) -> bool:
    """A byline: date and/or 来源/作者/发布时间 labels, short, not a sentence."""
    if len(line) > 100 or any(mark in line for mark in "。！？"):
        return False
    if _META_KEYS.search(line) or re.fullmatch(r"[\d\s年月日时分秒:：/.|｜-]{3,30}", line) and re.search(r"\d", line):
        return True  # labelled byline, or a line that is only a date/time ("3月1日 08:10")
    rest = line
    for pattern in _DATE_PATTERNS:
        rest = pattern.sub("", rest)
    return rest != line and len(re.sub(r"[\s\d:：|｜/\-]+", "", rest)) <= 12


def _title_like(line: str) -> bool:
    return (
        len(line) <= 80
        and bool(re.search(r"\w", line))
        and not any(mark in line for mark in "。；")
        and not line.endswith(("，", ","))
    )


def _title_block(lines: list[str], first: int, hint: str | None) -> tuple[str | None, int, set[int]]:
    """Find the title and the byline lines in the head zone.

    Returns (title, index of the title line or -1, indexes of meta lines).
    News pages put the title right before the byline, so when a byline exists
    the last title-like line before it wins (a site name above it is furniture).
    """
    head = range(min(first, len(lines), 12))
    meta = {i for i in head if _is_meta(lines[i]) and not _is_breadcrumb(lines[i])}
    if hint:
        hint_norm = _normalise_line(hint)
        for i in head:
            if lines[i] == hint_norm or (
                len(hint_norm) >= 6 and hint_norm in lines[i] and not _is_breadcrumb(lines[i])
            ):
                return hint_norm, i, meta
        return hint_norm, -1, meta
    candidates = [i for i in head if i not in meta and _title_like(lines[i]) and not _is_furniture(lines[i], True)]
    if meta and candidates:
        before = [i for i in candidates if i < min(meta)]
        if before:
            return lines[before[-1]], before[-1], meta
    if candidates:
        return lines[candidates[0]], candidates[0], meta
    return None, -1, meta  # no title line: the caller falls back to the file name


def _source(line: str) -> str | None:
    match = _SOURCE.search(line)
    return match.group(1) if match else None
