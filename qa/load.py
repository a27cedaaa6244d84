"""Reading article files of several formats into plain text plus format hints.

Why this module exists: the rest of the pipeline only ever sees ``RawText``
(text and the hints a format can give, such as an HTML ``<title>``), so a new
format is one reader here and nothing elsewhere. Text encodings are detected,
not assumed, because Chinese articles still arrive as GBK/GB18030 and Big5.
A file that cannot be read is *skipped with a reason*, never fatal: one bad
upload must not stop a whole collection from loading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from .errors import LoadError
from .text import CJK
from .types import RawText, Skipped

SUPPORTED: frozenset[str] = frozenset({".txt", ".md", ".html", ".htm", ".docx", ".pdf"})

_HTML_DROP = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "iframe", "svg")
_HTML_DROP_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
_HTML_DROP_CLASS = re.compile(
    r"(^|[-_ ])(nav|navbar|menu|breadcrumbs?|crumbs?|footer|sidebar|share|social|copyright|comments?|related"
    r"|advert|ads?)($|[-_ ])",
    re.I,
)
_HTML_BLOCKS = (
    "p", "div", "section", "article", "main", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "tr", "table", "dd", "dt", "figcaption", "center",
)  # fmt: skip
_HTML_DATE_META = (
    "article:published_time", "og:published_time", "og:release_date", "pubdate", "publishdate",
    "publish_date", "publishtime", "date", "dc.date", "dc.date.issued", "dcterms.created",
)  # fmt: skip
_TITLE_SEPARATORS = re.compile(r"\s+[-|–—_]\s+|\s*[|｜_]\s*")

def discover(paths: Iterable[Path]) -> tuple[list[Path], list[Skipped]]:
    """Expand files and folders (recursively) into the supported files, sorted.

    Hidden files and folders (name starting with '.') inside a folder are
    ignored silently; anything else that cannot be loaded is reported.
    """
    found: dict[Path, None] = {}
    skipped: list[Skipped] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if any(part.startswith(".") for part in rel.parts) or not child.is_file():
                    continue
                if child.suffix.lower() in SUPPORTED:
                    found.setdefault(child.resolve(), None)
                else:
                    skipped.append(Skipped(str(child), _unsupported(child)))
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED:
                found.setdefault(path.resolve(), None)
            else:
                skipped.append(Skipped(str(path), _unsupported(path)))
        else:
            skipped.append(Skipped(str(path), "no such file or folder"))
    return sorted(found), skipped


def read(path: Path) -> RawText:
    """Read one supported file; raise ``LoadError`` saying why it cannot be used."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"{path.name}: {_unsupported(path)}.", "Convert it to one of the supported formats.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LoadError(
            f"{path.name}: cannot be read ({error.strerror or error}).", "Check the file's permissions."
        ) from None
    if not data.strip():
        raise LoadError(f"{path.name}: the file is empty.", "Add text to it or remove it from the collection.")
    if suffix == ".txt":
        raw = RawText(str(path), decode_bytes(data, path.name))
    elif suffix == ".md":
        raw = _read_markdown(decode_bytes(data, path.name), path)
    elif suffix in (".html", ".htm"):
        raw = _read_html(data, path)
    elif suffix == ".docx":
        raw = _read_docx(data, path)
    else:
        raw = _read_pdf(data, path)
    if not raw.text.strip():
        raise LoadError(
            f"{path.name}: no text could be extracted.", "Check that the file contains text, not only images."
        )
    return raw


# ---------------------------------------------------------------- encodings


def decode_bytes(data: bytes, name: str = "file", declared: str | None = None) -> str:
    """Decode text bytes: BOMs, then strict UTF-8, then the most plausible of the candidates.

    Detectors guess wrong on short Chinese texts (Big5 and GBK byte ranges
    overlap), so every candidate that decodes cleanly is scored by how much of
    the result is common Chinese/Latin text, and the best one wins.
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return _normalise_newlines(data.decode(encoding))
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise LoadError(
            f"{name}: looks like a binary file, not text.", "Only text, HTML, docx and PDF files can be loaded."
        )
    if declared and declared.replace("_", "-") not in ("utf-8", "utf8"):
        try:
            text = data.decode(declared)
            if _plausibility(text) > 0.9:
                return _normalise_newlines(text)  # the page says so and it reads well
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return _normalise_newlines(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    candidates = ["gb18030", "big5"]
    try:
        from charset_normalizer import from_bytes

        candidates += [match.encoding for match in from_bytes(data)]
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    best, best_score = None, 0.0
    for encoding in dict.fromkeys(candidates):
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        score = _plausibility(text)
        if score > best_score:
            best, best_score = text, score
    if best is None or best_score < 0.75:
        raise LoadError(
            f"{name}: the text encoding could not be recognised (or the file is not text).",
            "Save it as UTF-8 and add it again.",
        )
    return _normalise_newlines(best)


def _plausibility(text: str) -> float:
    """Share of characters that look like real Chinese or Western text (0..1), on a sample."""
    total = good = 0
    for char in text[:20000]:
        if char.isspace():
            continue
        total += 1
        code = ord(char)
        if code < 0x80:
            good += char.isprintable()
        elif CJK.match(char):
            good += _common_hanzi(char)
        elif 0x3000 <= code <= 0x303F or 0xFF00 <= code <= 0xFFEF or 0x2010 <= code <= 0x206F:
            good += 1  # CJK and general punctuation, full-width forms
        elif 0xC0 <= code <= 0x17F or code in (0xA9, 0xAE, 0xB0, 0xB7):
            good += 1  # accented Latin letters and a few common signs
        elif code < 0xA0 or 0xE000 <= code <= 0xF8FF or code == 0xFFFD:
            good -= 2  # control, private-use and replacement characters: a wrong guess
    return good / total if total else 0.0


def _common_hanzi(char: str) -> bool:
    """True for the frequent characters of GB2312 or Big5: wrong decodings yield rare ones."""
    try:
        if 0xB0 <= char.encode("gb2312")[0] <= 0xD7:  # GB2312 level 1: the 3,755 frequent
            return True
    except UnicodeEncodeError:
        pass
    try:
        code = char.encode("big5")
        return 0xA440 <= int.from_bytes(code, "big") <= 0xC67E  # Big5 frequent characters
    except UnicodeEncodeError:
        return False


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unsupported(path: Path) -> str:
    kind = path.suffix or "(no suffix)"
    return f"unsupported file type {kind} (supported: {', '.join(sorted(SUPPORTED))})"


# ---------------------------------------------------------------- formats


_MD_FRONT = re.compile(r"\A---\n(.*?)\n---\n", re.S)
_MD_RULES = (
    (re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.M), r"\1"),  # heading markers
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links keep their text
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # bold
    (
        re.compile(r"^ {0,3}(```|~~~).*$|^ {0,3}([-*_] *){3,}$|^\|?[ \t:|-]*-[ \t:|-]*\|?$", re.M),
        "",
    ),  # fences, rules, table rules
    (re.compile(r"^ {0,3}> ?|^[ \t]*[-*+][ \t]+", re.M), ""),  # quote and bullet markers
)


def _read_markdown(text: str, path: Path) -> RawText:
    """Markdown as plain text (markup removed); front-matter title/date become hints."""
    title = date = None
    if front := _MD_FRONT.match(text):
        fields = dict(re.findall(r"^(\w+)\s*:\s*[\"']?(.*?)[\"']?\s*$", front.group(1), re.M))
        title, date = fields.get("title") or None, fields.get("date") or None
        text = text[front.end() :]
    for pattern, replacement in _MD_RULES:
        text = pattern.sub(replacement, text)
    return RawText(str(path), text, title=title, date=date)


def _read_html(data: bytes, path: Path) -> RawText:
    """Main text of a web page; navigation, header, footer and scripts dropped."""
    from bs4 import BeautifulSoup

    head = data[:4096].decode("ascii", "ignore")
    match = re.search(r"""charset\s*=\s*["']?([\w-]+)""", head, re.I)
    text = decode_bytes(data, path.name, declared=match.group(1).lower() if match else None)
    soup = BeautifulSoup(text, "lxml")
    title = _html_title(soup)
    url = _meta(soup, "og:url")
    canonical = soup.find("link", rel=lambda value: value and "canonical" in value)
    href = str(canonical.get("href") or "") if canonical else ""
    if href.startswith("http"):
        url = href
    date = next((value for name in _HTML_DATE_META if (value := _meta(soup, name))), None)
    if date is None and (time := soup.find("time", datetime=True)):
        date = str(time["datetime"])
    for tag in soup.find_all(_HTML_DROP):
        if not (tag.name == "header" and tag.find_parent("article")):  # an article's own header holds its title
            tag.decompose()
    total = len((soup.body or soup).get_text()) or 1
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None or tag.name in ("body", "html", "main", "article"):
            continue
        names: str | list[str] = tag.get("class") or []
        classes = " ".join(names if isinstance(names, list) else [names]) + " " + str(tag.get("id", ""))
        if tag.get("role") in _HTML_DROP_ROLES or _HTML_DROP_CLASS.search(classes):
            if tag.find(("article", "h1")) is None and len(tag.get_text()) < 0.4 * total:
                tag.decompose()  # a "nav-wrapper" around the whole page is not navigation
    articles = soup.find_all("article")
    body = max(articles, key=lambda a: len(a.get_text())) if articles else soup.find("main") or soup.body or soup
    for br in body.find_all("br"):
        br.replace_with("\n")
    for tag in body.find_all(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (re.sub(r"[ \t\r\f]+", " ", line).strip() for line in body.get_text().split("\n"))
    return RawText(str(path), "\n\n".join(line for line in lines if line), title=title, url=url, date=date)


def _html_title(soup) -> str | None:
    """og:title, else the single <h1>, else <title> without a site-name suffix."""
    title = _meta(soup, "og:title")
    if not title:
        h1s = soup.find_all("h1")
        title = h1s[0].get_text(" ", strip=True) if len(h1s) == 1 else None
    if not title and soup.title and soup.title.string:
        parts = [part.strip() for part in _TITLE_SEPARATORS.split(soup.title.string) if part.strip()]
        title = max(parts, key=len) if parts else None
    return re.sub(r"\s+", " ", title).strip() if title else None


def _meta(soup, name: str) -> str | None:
    tag = soup.find("meta", attrs={"property": name}) or soup.find(
        "meta", attrs={"name": re.compile(f"^{re.escape(name)}$", re.I)}
    )
    content = tag.get("content", "").strip() if tag else ""
    return content or None


def _read_docx(data: bytes, path: Path) -> RawText:
    """Paragraph text of a Word document (tables included, one row a line)."""
    import io
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise LoadError(
            f"{path.name}: not a readable .docx file ({error}).", "Re-save it from Word as .docx."
        ) from None
    lines = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" ".join(dict.fromkeys(cell.text.strip() for cell in row.cells if cell.text.strip())))
    title = _useful_title(document.core_properties.title)
    # core_properties.created is when the file was made, not when the article appeared: not a date hint
    return RawText(str(path), "\n\n".join(line for line in lines if line), title=title)


def _read_pdf(data: bytes, path: Path) -> RawText:
    """Text layer of a PDF; a scanned PDF without one is rejected by ``read``."""
    import io
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(f"{path.name}: the PDF is password-protected.", "Save an unprotected copy and add that.")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except LoadError:
        raise
    except Exception as error:  # noqa: BLE001 - pypdf raises many types for damaged files
        raise LoadError(
            f"{path.name}: not a readable PDF ({type(error).__name__}).", "Re-export the PDF and add it again."
        ) from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    return RawText(str(path), text, title=_useful_title(title))


def _useful_title(title: object) -> str | None:
    """A document-properties title, unless it is a tool's placeholder or a file name."""
    text = str(title or "").strip()
    if not text or re.search(r"^(microsoft \w+ - |untitled|无标题)|\.\w{2,4}$", text, re.I):
        return None
    return text
