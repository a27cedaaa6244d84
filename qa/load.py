"""Reading article files of several formats into plain text plus format hints.

Why this module exists: the rest of the pipeline only ever sees ``RawText``
(text and the hints a format can give, such as an HTML ``<title>``), so a new
format is one reader here and nothing elsewhere. Text encodings are detected,
not assumed, because Chinese articles still arrive as GBK/GB18030 and Big5.
A file that cannot be read is *skipped with a reason*, never fatal: one bad
upload must not stop a whole collection from loading. That holds for any
failure inside a reader (python-docx, lxml, pypdf, charset detection,
``MemoryError``, ``RecursionError``), and the costly cases are refused
before any work starts: files over the size cap, and .docx archives whose
parts would inflate past ``DOCX_MAX_INFLATED`` (zip bombs); HTML pages at
the first element past ``HTML_MAX_ELEMENTS`` or ``HTML_MAX_DEPTH``.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import LoadError
from .text import CJK, one_line
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

# Zip-bomb limits for .docx, checked on the archive's directory before anything is inflated.
# zipfile never inflates a part past the size its directory declares (and then fails its CRC
# check), so these sums bound what python-docx can unpack.
DOCX_MAX_INFLATED = 100 * 2**20  # all parts together; a 300-page text-only report is ~5 MB of XML
DOCX_MAX_RATIO = 100  # a part over 1 MB that inflates more than this is a bomb (Word's XML: 5-15x)
DOCX_MAX_PARTS = 5000
# HTML is bounded by work, not only by bytes. No tree is built (BeautifulSoup's held ~1.4 kB per element, so a
# 19 MB page of 1.6 M tiny elements cost minutes and gigabytes): two streaming passes of lxml's parser keep only
# the text and a stack of open elements, so memory follows the page's size, not its element count (peak RSS
# 1.0-4.1x the file's size in benchmarks/html_memory.py, whether 99,000 elements in 0.9 MB or 182,081 in 8 MB).
# The element count bounds time: 9-14 us per element for both passes (2 shared cores), so a page at the limit
# reads in ~5 s, and the page of 1.6 M ``<b>字</b>`` is refused in its first pass at the element past the limit
# (~1 s). Measured on real pages: at most 25 deep (72,611 pages of Rust and Python documentation); the largest
# page that reads as one document, the Node.js API on one page (8 MB), has 182,081 elements, the whole Rust
# Reference (4.4 MB) 90,336. Bytes per element do not separate real pages from hostile ones (a table cell
# ``<td>1</td>`` is as dense as ``<b>字</b>``), so the limits are absolute.
HTML_MAX_DEPTH = 256  # ten times the deepest real page; also bounds the stack and the work of each end tag
HTML_MAX_ELEMENTS = 400_000  # twice the largest real page
# A text that is valid UTF-8 except for at most 1 byte in 100 of its non-ASCII bytes loads as UTF-8
# with those bytes replaced by U+FFFD. More than that means another encoding (GBK, Big5: nearly
# every non-ASCII byte is invalid UTF-8 there) or binary data, and the other decoders decide.
UTF8_MAX_INVALID_SHARE = 0.01
_ASCII = bytes(range(0x80))


def discover(paths: Iterable[Path], follow_links: bool = False) -> tuple[list[Path], list[Skipped]]:
    """Expand files and folders (recursively) into the supported files, sorted.

    Every path given, and every path found in a folder, has exactly one
    outcome: a file to read, or a ``Skipped`` reason. The only exception:
    hidden files and folders (name starting with '.') inside a folder are
    ignored silently. Special files (FIFOs, sockets, devices) are skipped
    from their ``lstat`` alone, never opened: opening a FIFO blocks.
    A symbolic link inside a folder is indexed as its target when the target
    lies in the same folder (so it is not indexed twice); a link that leaves
    the folder is skipped with a message unless ``follow_links``, and then it
    is indexed under the link's own path, so deleting the link removes it.
    A link given as a file argument follows the same rule, its folder being
    the one it sits in (``qa build --add inbox/*.txt`` must not index what a
    name in inbox points to elsewhere). Links to folders are never descended
    into; a folder given as an argument is
    read wherever it leads, since the user named it.
    """
    found: dict[Path, None] = {}
    skipped: list[Skipped] = []
    for given in paths:
        path = Path(given).expanduser()
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            skipped.append(Skipped(str(path), "no such file or folder"))
            continue
        except OSError as error:
            skipped.append(Skipped(str(path), f"cannot be read ({one_line(error.strerror or str(error))})"))
            continue
        if path.is_dir():  # a folder, or a link to one
            root = path.resolve()
            for rel, kind in _walk(path):
                # the walk enters no folder link, so no part of rel is a link: root / rel is the resolved path
                _found(path / rel, root, follow_links, "the indexed folder", found, skipped, kind, root / rel)
        else:
            _found(path, path.parent.resolve(), follow_links, "its folder", found, skipped, mode)
    return sorted(found), skipped


def _walk(folder: Path) -> list[tuple[str, int]]:
    """Every entry under ``folder`` that is not a folder, as (relative path, ``st_mode`` or just its type bits),
    in ``Path`` order; hidden names (and all under a hidden folder) left out.

    ``os.scandir`` gives each entry's type from the directory listing itself,
    so a file costs no ``stat`` here (a rebuild of an unchanged collection is
    little more than this walk). Links to folders are reported, not entered.
    Unreadable folders are passed over, as ``rglob`` does.
    """
    out: list[tuple[str, int]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(folder, rel)) as entries:
                listed = list(entries)
        except OSError:
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            name = os.path.join(rel, entry.name) if rel else entry.name
            try:
                if entry.is_symlink():
                    out.append((name, stat.S_IFLNK))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(name)
                elif entry.is_file(follow_symlinks=False):
                    out.append((name, stat.S_IFREG))
                else:
                    out.append((name, entry.stat(follow_symlinks=False).st_mode))
            except OSError:  # gone since listed: its lstat in _found says so
                out.append((name, 0))
    out.sort(key=lambda item: item[0].split(os.sep))
    return out


def _found(
    path: Path,
    root: Path,
    follow: bool,
    where: str,
    found: dict[Path, None],
    skipped: list[Skipped],
    mode: int | None = None,
    resolved: Path | None = None,
) -> None:
    """Give one path (not a folder to walk) its one outcome: into ``found``, or a reason into ``skipped``.

    ``mode``: its ``lstat`` mode when known (0: unknown); ``resolved``: its resolved path when known.
    """
    try:
        mode = mode or path.lstat().st_mode
    except OSError as error:  # gone since it was listed, or unreadable
        skipped.append(Skipped(str(path), f"cannot be read ({one_line(error.strerror or str(error))})"))
        return
    if stat.S_ISDIR(mode):
        return  # a folder inside a folder: the walk lists its files
    if stat.S_ISLNK(mode):
        file, why = _link(path, root, follow, where)
        if why:
            skipped.append(Skipped(str(path), why))
        if file is None:
            return
    elif stat.S_ISREG(mode):
        file = resolved or path.resolve()
    else:
        skipped.append(Skipped(str(path), f"{_special(mode)}, not a regular file"))
        return
    if path.suffix.lower() in SUPPORTED:
        found.setdefault(file, None)
    else:
        skipped.append(Skipped(str(path), _unsupported(path)))


def _special(mode: int) -> str:
    """What kind of special file ``mode`` describes, in a few words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _link(link: Path, root: Path, follow: bool, where: str = "the indexed folder") -> tuple[Path | None, str | None]:
    """Where a symbolic link inside ``root`` should be read from, or why it is skipped.

    Returns (file to index or None, reason to report or None).
    """
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # missing target, or a loop of links
        return None, "a symbolic link whose target does not exist"
    inside = target == root or root in target.parents
    if target.is_dir():
        return None, None if inside else f"a link to a folder outside {where} (folder links are not followed)"
    if not target.is_file():
        return None, "a link to something that is not a regular file"
    if inside:
        return target, None  # the target itself is (or will be) found in the folder: index it once
    if not follow:
        shown = one_line(str(target))
        return None, f"a link to a file outside {where} ({shown}); use --follow-links to index it"
    return link.parent.resolve() / link.name, None


class SeenFiles:
    """What each file looked like (its stat) when it was last read, and the content hash it gave then.

    Why: a rebuild of an unchanged collection should cost a ``stat`` per file,
    not a read and a parse (a 19 MB page cost minutes on every rebuild).
    A file is not read again when its device, inode, size, modification time
    and change time (both in ns) and this version of the reading code all
    equal the record, AND the index still holds the content hash recorded
    with them. The index's content hash stays the truth: a record is only a
    claim that the file still says what the index holds, checked against it,
    so a stale or foreign record (another index, an index rebuilt with
    ``--full``, a document removed since) costs a read, never a wrong answer.
    A file whose stat changed but whose text did not is read, found
    unchanged by its hash, and recorded anew.

    Kept beside the index in its own SQLite file because neither index
    format has room for it: the documents table has fixed columns in both
    backends (a format change), and a Milvus manifest is one row of at most
    64 kB. An index without records (older, or the file lost) re-reads every
    file once. Like the embedding cache, it is only a speed-up: a damaged
    file is replaced by an empty one.

    Racy records are never written: a file modified less than
    ``RACY_SECONDS`` before it was stat'ed could be modified again within the
    same timestamp tick with the same size, and its stat would not show it.
    """

    RACY_SECONDS = 2  # covers coarse timestamp ticks (ext4's jiffies, FAT's 2 s)

    def __init__(self, folder: Path, reader: str = "") -> None:
        """``reader`` names the version of the code that turns a file into a document: records made by
        other code are not trusted (a fix to cleaning must reach unchanged files)."""
        import sqlite3

        self.reader = reader
        self.path = Path(folder) / "files.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = self._connect()
        except sqlite3.DatabaseError:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._con = self._connect()
        rows = self._con.execute("SELECT path, stat, doc_id, hash, notices FROM files").fetchall()
        self._records = {path: (stat_, doc_id, digest, notices) for path, stat_, doc_id, digest, notices in rows}

    def _connect(self):
        import sqlite3

        con = sqlite3.connect(str(self.path), timeout=30)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, stat TEXT NOT NULL, doc_id TEXT NOT NULL,"
            " hash TEXT NOT NULL, notices TEXT NOT NULL) WITHOUT ROWID"
        )
        con.commit()
        return con

    def key(self, path: Path) -> str | None:
        """The file's stat as one string, or None when it cannot be trusted yet (racy) or read."""
        try:
            info = os.stat(path)
        except OSError:
            return None
        if time.time_ns() - info.st_mtime_ns < self.RACY_SECONDS * 10**9:
            return None
        fields = (self.reader, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        return ":".join(map(str, fields))

    def unchanged(self, path: Path, key: str | None, indexed: Mapping[str, str]) -> tuple[str, list[str]] | None:
        """(doc_id, its loading notices) when ``path`` need not be read again, else None."""
        record = self._records.get(str(path))
        if key is None or record is None or record[0] != key or indexed.get(record[1]) != record[2]:
            return None
        return record[1], json.loads(record[3]) if record[3] != "[]" else []

    def record(self, rows: Iterable[tuple[str, str, str, str, list[str]]], forget: Iterable[str] = ()) -> None:
        """Store (path, stat key, doc_id, content hash, notices) of files just read; drop paths that are gone."""
        import sqlite3

        try:
            with self._con:
                self._con.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in forget])
                self._con.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                    [(p, k, d, h, json.dumps(n, ensure_ascii=False)) for p, k, d, h, n in rows],
                )
        except sqlite3.Error:
            pass  # only a speed-up: the next build reads those files again

    def paths(self) -> list[str]:
        return list(self._records)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SeenFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read(path: Path, max_bytes: int | None = None) -> RawText:
    """Read one supported file; raise ``LoadError`` saying why it cannot be used.

    ``max_bytes`` (None: no cap) is checked before the file is read.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    name = one_line(path.name)
    if suffix not in SUPPORTED:
        raise LoadError(f"{name}: {_unsupported(path)}.", "Convert it to one of the supported formats.")
    try:
        # O_NONBLOCK: a FIFO put where a file was listed must not hang the build (no effect on regular files)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise LoadError(f"{name}: {_special(info.st_mode)}, not a regular file.")
            if max_bytes and info.st_size > max_bytes:
                raise LoadError(_over_cap(name, info.st_size, max_bytes))
            data = handle.read(max_bytes + 1) if max_bytes else handle.read()  # +1: the file may have grown
    except OSError as error:
        why = one_line(error.strerror or str(error))
        raise LoadError(f"{name}: cannot be read ({why}).", "Check the file's permissions.") from None
    if max_bytes and len(data) > max_bytes:
        raise LoadError(_over_cap(name, len(data), max_bytes))
    if not data.strip():
        raise LoadError(f"{name}: the file is empty.", "Add text to it or remove it from the collection.")
    if suffix == ".txt":
        text, replaced = decode_text(data, name)
        raw = RawText(str(path), text, replaced=replaced)
    elif suffix == ".md":
        text, replaced = decode_text(data, name)
        raw = _read_markdown(text, path)
        raw.replaced = replaced
    elif suffix in (".html", ".htm"):
        raw = _read_html(data, path)
    elif suffix == ".docx":
        raw = _read_docx(data, path)
    else:
        raw = _read_pdf(data, path)
    if not raw.text.strip():
        raise LoadError(f"{name}: no text could be extracted.", "Check that the file contains text, not only images.")
    return raw


def _over_cap(name: str, size: int, cap: int) -> str:
    return (
        f"{name}: {size / 2**20:.1f} MB is over the {cap / 2**20:g} MB cap for one file; "
        "split it, or raise QA_MAX_FILE_MB (0 removes the cap)."
    )


def describe(error: BaseException) -> str:
    """A library exception in one short line: its type, and its message's first 160 characters."""
    message = one_line(str(error).strip())
    if len(message) > 160:
        message = message[:160] + "…"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# ---------------------------------------------------------------- encodings


def decode_text(data: bytes, name: str = "file", declared: str | None = None) -> tuple[str, int]:
    """Decode text bytes: BOMs, then UTF-8, then the most plausible of the candidates.

    Returns the text and how many undecodable bytes were replaced by U+FFFD
    (only UTF-8 with a few stray bytes is repaired so, see
    ``UTF8_MAX_INVALID_SHARE``: one damaged byte must not cost a whole article).
    Detectors guess wrong on short Chinese texts (Big5 and GBK byte ranges
    overlap), so every candidate that decodes cleanly is scored by how much of
    the result is common Chinese/Latin text, and the best one wins.
    """
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return _normalise_newlines(data.decode(encoding)), 0
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
                return _normalise_newlines(text), 0  # the page says so and it reads well
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return _normalise_newlines(data.decode("utf-8")), 0
    except UnicodeDecodeError:
        pass
    repaired = _mostly_utf8(data)
    if repaired is not None:
        return _normalise_newlines(repaired[0]), repaired[1]
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
    return _normalise_newlines(best), 0


def _mostly_utf8(data: bytes) -> tuple[str, int] | None:
    """UTF-8 with its few invalid bytes replaced, and their count; None when too many are invalid."""
    allowed = int(len(data.translate(None, _ASCII)) * UTF8_MAX_INVALID_SHARE)
    view, parts, position, invalid = memoryview(data), [], 0, 0
    while True:
        try:
            parts.append(codecs.utf_8_decode(view[position:], "strict", True)[0])
            return "".join(parts), invalid
        except UnicodeDecodeError as error:
            invalid += error.end - error.start
            if invalid > allowed:
                return None
            parts.append(codecs.utf_8_decode(view[position : position + error.start], "strict", True)[0] + "\ufffd")
            position += error.end


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
    """Main text of a web page; navigation, header, footer and scripts dropped.

    Two streaming passes of lxml's HTML parser into targets that build no
    tree (``_Page``): the first counts elements and nesting, refusing the
    page at the first element over a limit, and measures the text of the
    body; the second writes the text of what is kept. An element that looks
    like furniture by its class, id or role is decided at its end tag, by
    its share of the body's text, which is why the body is measured first.
    Memory is the text kept plus a stack of at most ``HTML_MAX_DEPTH`` open
    elements, whatever the number of elements.
    """
    name = one_line(path.name)
    pieces, replaced = _html_pieces(data, name)
    measured = _parse_html(pieces(), _Page(None), name)
    page = _parse_html(pieces(), _Page(measured.body_chars or 1), name)
    url = page.meta("og:url")
    if (page.canonical or "").startswith("http"):
        url = page.canonical
    date = next((value for hint in _HTML_DATE_META if (value := page.meta(hint))), None)
    if date is None:
        date = page.time
    if page.article:
        _, _, start, end = page.article
    elif page.main:
        _, start, end = page.main
    else:
        start, end = page.body or (0, page.pos)
    text = "\n\n".join(page.lines(start, end))
    return RawText(str(path), text, title=page.title(), url=url, date=date, replaced=replaced)


_HTML_KEEP = frozenset({"body", "html", "main", "article"})  # never dropped for their class, id or role
_HTML_LEFT_OUT = frozenset({"rt", "rp", "script", "style", "template"})  # their text is not counted as the article's
_HTML_HINTS = ("og:url", "og:title", *_HTML_DATE_META)
_HTML_HINT_NAMES = tuple((hint, re.compile(f"^{re.escape(hint)}$", re.I)) for hint in _HTML_HINTS)
_HTML_TOKENS = re.compile(r"\S+")
_HTML_SPACES = re.compile(r"[ \t\r\f]+")
_ASCII_SPACES = " \n\t\x0c\r"


class _Open:
    """One open element of ``_Page``: what it inherits, and where it started in the counts and the text."""

    __slots__ = (
        "name", "ordinal", "skip", "plain", "keep_space", "in_article", "headed", "furniture",
        "chars", "pos", "plain_at", "piece", "chosen",
    )  # fmt: skip
    skip: bool
    plain: bool
    keep_space: bool
    in_article: bool

    def __init__(self, name: str, ordinal: int, parent: _Open | None) -> None:
        self.name, self.ordinal = name, ordinal
        self.skip = parent is not None and parent.skip  # inside a dropped element (script, nav, footer ...)
        self.plain = (parent is None or parent.plain) and name not in _HTML_LEFT_OUT
        self.keep_space = (parent is not None and parent.keep_space) or name in ("pre", "textarea")
        self.in_article = parent is not None and (parent.in_article or parent.name == "article")
        self.headed = False  # holds an <article> or an <h1> (a wrapper of the page, not furniture)
        self.furniture = False
        self.chars = self.pos = self.plain_at = self.piece = 0
        self.chosen: tuple[Any, Any] = (None, None)  # a furniture-like element's: the article and main before it


class _Page:
    """An lxml parser target that keeps the text of a page and its hints, and builds no tree.

    It reads a page as the earlier reader on a BeautifulSoup tree did (the
    same parser, the same events; benchmarks/html_sameness.py compares the
    two page by page), with the rules that reader had:
    whitespace-only strings collapsed to one space or line break (outside
    <pre> and <textarea>), an end tag closing up to the latest open element
    of its name, the hints (<title>, the single <h1>, <meta>, the canonical
    <link>, <time>) read from every element, dropped or not. ``body_chars``
    None is the measuring pass: counts only. Otherwise it is the size of
    the body's text, and an element whose class, id or role names
    furniture is dropped at its end tag when it holds less than 40 % of
    that text and no <article> or <h1>.

    Nothing is kept per element once it is closed: the text in ``_Chunks``,
    the longest article and the first main so far (each furniture-like
    element remembers the ones before it, to go back to if it is dropped),
    and a stack of the open elements, at most ``HTML_MAX_DEPTH``.
    """

    def __init__(self, body_chars: int | None) -> None:
        self.extract = body_chars is not None
        self.total = body_chars or 1
        self.elements = 0
        self.refused = False
        self.stack: list[_Open] = []
        self.run: list[str] = []  # the string being read: data until the next tag, comment or the end
        self.chars = 0  # text outside dropped elements: the sizes the furniture rule compares
        self.first_body: _Open | None = None
        self.body_chars: int | None = None
        self.text = _Chunks()
        self.pos = 0  # length of the text kept so far
        self.plain = 0  # the same without ruby annotations (<rt>, <rp>): what an article's length counts
        # the longest kept <article>, the first if tied: (length, -ordinal, start, end)
        self.article: tuple[int, int, int, int] | None = None
        self.main: tuple[int, int, int] | None = None  # the first kept <main>: (ordinal, start, end)
        self.body: tuple[int, int] | None = None
        self.by_property: dict[str, str] = {}  # hint -> content of its first <meta property=...>
        self.by_name: dict[str, str] = {}  # hint -> content of the first <meta name=...> matching it
        self.canonical: str | None = None
        self.time: str | None = None
        self.h1s = 0
        self.h1: _Open | None = None  # the first <h1>, while it is open
        self.h1_text = _Chunks()  # its strings, each after a space
        self.title_tree: list[Any] | None = None  # the first <title>: up to two children of each element
        self.title_open: list[list[Any]] = []

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self._end_run()
        self.elements += 1
        if len(self.stack) >= HTML_MAX_DEPTH or self.elements > HTML_MAX_ELEMENTS:
            self.refused = True  # the source ends here: lxml would otherwise read the rest of the page
            raise _Refused(len(self.stack) >= HTML_MAX_DEPTH)
        frame = _Open(tag, self.elements, self.stack[-1] if self.stack else None)
        if not frame.skip and tag in _HTML_DROP and not (tag == "header" and frame.in_article):
            frame.skip = True  # an article's own header holds its title
        frame.chars = self.chars
        if tag == "body" and self.first_body is None and not frame.skip:
            self.first_body = frame
        if self.extract:
            self._hints(frame, attrib)
            if not frame.skip:
                self._begin(frame, attrib)
        self.stack.append(frame)

    def end(self, tag: str) -> None:
        self._end_run()
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index].name == tag:
                while len(self.stack) > index:
                    self._close(self.stack.pop())
                return

    def data(self, data: str) -> None:
        self.run.append(data)

    def comment(self, text: str) -> None:
        self._end_run()
        if self.title_open:
            _child(self.title_open[-1], _collapse(text))

    def pi(self, target: str, data: str) -> None:
        self._end_run()
        if self.title_open:
            _child(self.title_open[-1], _collapse(target + " " + data))

    def doctype(self, *ids: object) -> None:
        self._end_run()

    def close(self) -> _Page:
        self._end_run()
        while self.stack:
            self._close(self.stack.pop())
        if self.first_body is None:
            self.body_chars = self.chars
        return self

    def _hints(self, frame: _Open, attrib: Mapping[str, str]) -> None:
        tag = frame.name
        if tag == "meta":
            content = attrib.get("content") or ""
            prop = attrib.get("property")
            if prop in _HTML_HINTS and prop not in self.by_property:
                self.by_property[prop] = content
            if (name := attrib.get("name")) is not None:
                for hint, pattern in _HTML_HINT_NAMES:
                    if hint not in self.by_name and pattern.search(name):
                        self.by_name[hint] = content
        elif tag == "link" and self.canonical is None:
            if any("canonical" in value for value in _HTML_TOKENS.findall(attrib.get("rel") or "")):
                self.canonical = attrib.get("href") or ""
        elif tag == "time" and self.time is None and "datetime" in attrib:
            self.time = attrib["datetime"] or ""
        elif tag == "h1":
            self.h1s += 1
            if self.h1s == 1:
                self.h1 = frame
        if self.title_open:
            node: list[Any] = []
            _child(self.title_open[-1], node)
            self.title_open.append(node)
        elif tag == "title" and self.title_tree is None:
            self.title_tree = []
            self.title_open.append(self.title_tree)

    def _begin(self, frame: _Open, attrib: Mapping[str, str]) -> None:
        frame.pos, frame.plain_at = self.pos, self.plain
        if frame.name not in _HTML_KEEP:
            named = " ".join(_HTML_TOKENS.findall(attrib.get("class") or "")) + " " + (attrib.get("id") or "")
            if attrib.get("role") in _HTML_DROP_ROLES or _HTML_DROP_CLASS.search(named):
                frame.furniture = True
                frame.piece, frame.chosen = self.text.mark(), (self.article, self.main)
        if frame.name == "br" or frame.name in _HTML_BLOCKS:
            self._write("\n")

    def _close(self, frame: _Open) -> None:
        if self.extract:
            if self.title_open:
                self.title_open.pop()
            if frame is self.h1:
                self.h1 = None
        if frame.skip:
            return
        size = self.chars - frame.chars
        if self.stack and (frame.headed or frame.name in ("article", "h1")):
            self.stack[-1].headed = True
        if frame is self.first_body:
            self.body_chars = size
        if not self.extract:
            return
        if frame.furniture and not frame.headed and size < 0.4 * self.total:  # furniture: back to where it began
            self.text.cut(frame.piece)
            self.pos, self.plain = frame.pos, frame.plain_at
            self.article, self.main = frame.chosen
            return
        if frame.name in _HTML_BLOCKS:
            self._write("\n")
        if frame.name == "article":
            article = (self.plain - frame.plain_at, -frame.ordinal, frame.pos, self.pos)
            if self.article is None or article[:2] > self.article[:2]:
                self.article = article
        elif frame.name == "main":
            if self.main is None or frame.ordinal < self.main[0]:
                self.main = (frame.ordinal, frame.pos, self.pos)
        elif frame is self.first_body:
            self.body = (frame.pos, self.pos)

    def _end_run(self) -> None:
        """The string read so far is complete: count it, and keep it unless it is inside a dropped element."""
        if not self.run:
            return
        string = "".join(self.run)
        self.run.clear()
        top = self.stack[-1] if self.stack else None
        if top is None or not top.keep_space:
            string = _collapse(string)
        plain = top is None or top.plain
        if self.extract:
            if self.title_open:
                _child(self.title_open[-1], string)
            if self.h1 is not None and plain and (stripped := string.strip()):
                self.h1_text.append(" " + stripped)
        if top is not None and top.skip:
            return
        self.chars += len(string)
        if self.extract:
            self._write(string)
            if plain:
                self.plain += len(string)

    def _write(self, piece: str) -> None:
        self.text.append(piece)
        self.pos += len(piece)

    def lines(self, start: int, end: int) -> list[str]:
        """The kept text from ``start`` to ``end`` in lines, spaces and tabs made one space, empty ones left out.

        Each piece is let go once read, so the lines never coexist with a
        second copy of the whole text.
        """
        lines: list[str] = []
        partial: list[str] = []  # the start of a line that goes on in the next piece
        pieces, self.text.items = self.text.items, []
        pieces.reverse()
        offset = 0
        while pieces:
            piece = pieces.pop()
            begin, offset = offset, offset + len(piece)
            if offset <= start or begin >= end:
                continue
            piece = piece[max(start - begin, 0) : end - begin]
            *complete, rest = piece.split("\n")
            for line in complete:
                if partial:
                    line, partial = "".join(partial) + line, []
                if line := _HTML_SPACES.sub(" ", line).strip():
                    lines.append(line)
            partial.append(rest)
        if line := _HTML_SPACES.sub(" ", "".join(partial)).strip():
            lines.append(line)
        return lines

    def meta(self, hint: str) -> str | None:
        """The content of the first <meta property=hint>, else of the first <meta name=hint> (any case)."""
        content = self.by_property[hint] if hint in self.by_property else self.by_name.get(hint, "")
        return content.strip() or None

    def title(self) -> str | None:
        """og:title, else the single <h1>, else <title> without a site-name suffix."""
        title = self.meta("og:title")
        if not title and self.h1s == 1:
            title = "".join(self.h1_text.items)[1:]
        if not title and (string := _only_string(self.title_tree)):
            parts = [part.strip() for part in _TITLE_SEPARATORS.split(string) if part.strip()]
            title = max(parts, key=len) if parts else None
        return re.sub(r"\s+", " ", title).strip() if title else None


class _Chunks:
    """Strings joined 256 at a time, so that many small ones cost about what one long one does.

    ``mark()`` gives a place that ``cut()`` goes back to: no string is joined
    across a place marked later than the last join.
    """

    def __init__(self) -> None:
        self.items: list[str] = []
        self.fixed = 0  # items before this index are not joined again

    def append(self, string: str) -> None:
        self.items.append(string)
        if len(self.items) - self.fixed >= 256:
            self._join()

    def mark(self) -> int:
        if len(self.items) - self.fixed > 1:
            self._join()
        self.fixed = len(self.items)
        return self.fixed

    def cut(self, place: int) -> None:
        del self.items[place:]
        self.fixed = min(self.fixed, place)

    def _join(self) -> None:
        self.items[self.fixed :] = ["".join(self.items[self.fixed :])]
        self.fixed = len(self.items)


class _Refused(Exception):
    pass


def _html_pieces(data: bytes, name: str) -> tuple[Callable[[], Iterator[str]], int]:
    """The decoded page as a source of pieces of about 64 K characters, and how many bytes were replaced.

    A page that is valid UTF-8 (most are) is decoded piece by piece each
    time it is read, so no copy of the whole decoded page is held: one emoji
    makes a Python str four bytes a character, four times the size of an
    ASCII page. Any other page is decoded whole by ``decode_text``, as a
    .txt file is, with the charset its head declares tried first.
    """
    head = data[:4096].decode("ascii", "ignore")
    match = re.search(r"""charset\s*=\s*["']?([\w-]+)""", head, re.I)
    declared = match.group(1).lower() if match else None
    utf8 = declared is None or declared.replace("_", "-") in ("utf-8", "utf8")
    if utf8 and not data.startswith(_BOMS) and b"\x00" not in data and _valid_utf8(data):
        return functools.partial(_utf8_pieces, data), 0
    text, replaced = decode_text(data, name, declared)
    text = text.removeprefix("\ufeff")  # lxml misreads a str that starts with a byte order mark
    return (lambda: (text[start : start + 2**16] for start in range(0, len(text), 2**16))), replaced


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _valid_utf8(data: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), 2**16):
            decoder.decode(view[start : start + 2**16])
        decoder.decode(b"", True)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_pieces(data: bytes) -> Iterator[str]:
    """``data`` decoded in 64 KiB steps, line breaks normalised as ``decode_text`` does (CR LF, CR: LF)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    held = ""  # a CR at the end of a piece may be the first half of a CR LF
    for start in range(0, len(data), 2**16):
        piece = held + decoder.decode(view[start : start + 2**16], start + 2**16 >= len(data))
        held = "\r" if piece.endswith("\r") else ""
        piece = piece[:-1] if held else piece
        if piece:
            yield _normalise_newlines(piece)
    if held:
        yield "\n"


class _Pieces:
    """A file-like source of pieces for lxml's parser; at its end as soon as the page is refused."""

    def __init__(self, pieces: Iterator[str], page: _Page) -> None:
        self.pieces, self.page = pieces, page

    def read(self, size: int = -1) -> bytes:
        return b"" if self.page.refused else next(self.pieces, "").encode()


def _parse_html(pieces: Iterator[str], page: _Page, name: str) -> _Page:
    """Parse ``pieces`` into ``page``; a page over a limit becomes a ``LoadError``.

    Parsed from a file-like source, not fed: libxml2's push parser (``feed``)
    keeps all the input it was given until the end, about the page's size
    again, while reading from a source holds only a small window of it.
    """
    from lxml import etree  # type: ignore[import-untyped]  # no stubs; only its parser is used

    parser = etree.HTMLParser(target=page, recover=True, no_network=True, encoding="utf-8")  # whatever <meta> says
    try:
        return etree.parse(_Pieces(pieces, page), parser)
    except _Refused as refused:
        if refused.args[0]:
            raise LoadError(f"{name}: elements are nested over {HTML_MAX_DEPTH} deep; not a readable page.") from None
        raise LoadError(f"{name}: over {HTML_MAX_ELEMENTS:,} HTML elements; not a readable page.") from None


def _collapse(string: str) -> str:
    """A string of ASCII whitespace only becomes one line break if it holds one, else one space."""
    if string.strip(_ASCII_SPACES):
        return string
    return "\n" if "\n" in string else " "


def _child(node: list[Any], child: Any) -> None:
    if len(node) < 2:  # one child or more than one is all ``_only_string`` needs to know
        node.append(child)


def _only_string(node: list[Any] | None) -> str | None:
    """The string of an element that holds one string, directly or through single children; else None."""
    while node is not None and len(node) == 1:
        if isinstance(node[0], str):
            return node[0]
        node = node[0]
    return None


def _read_docx(data: bytes, path: Path) -> RawText:
    """Paragraph text of a Word document (tables included, one row a line)."""
    import io
    import zipfile

    import docx

    name = one_line(path.name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _check_inflated_size(archive.infolist(), name)
        document = docx.Document(io.BytesIO(data))
        lines = [p.text.strip() for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                lines.append(" ".join(dict.fromkeys(cell.text.strip() for cell in row.cells if cell.text.strip())))
        title = _useful_title(document.core_properties.title)
    except (LoadError, MemoryError, RecursionError):
        raise
    except Exception as error:  # noqa: BLE001 - zipfile, python-docx and lxml raise many types for damaged files
        why = describe(error)
        raise LoadError(f"{name}: not a readable .docx file ({why}).", "Re-save it from Word as .docx.") from None
    # core_properties.created is when the file was made, not when the article appeared: not a date hint
    return RawText(str(path), "\n\n".join(line for line in lines if line), title=title)


def _check_inflated_size(parts: list, name: str) -> None:
    """Refuse a zip bomb from the archive's directory alone, before python-docx inflates anything."""
    if len(parts) > DOCX_MAX_PARTS:
        raise LoadError(f"{name}: the .docx holds {len(parts)} parts (at most {DOCX_MAX_PARTS}); not a Word file.")
    total = sum(part.file_size for part in parts)
    if total > DOCX_MAX_INFLATED:
        raise LoadError(
            f"{name}: the .docx would unpack to {total / 2**20:.0f} MB (at most {DOCX_MAX_INFLATED // 2**20} MB); "
            "a damaged file or a zip bomb."
        )
    for part in parts:
        if part.file_size > 2**20 and part.file_size > DOCX_MAX_RATIO * max(part.compress_size, 1):
            ratio = part.file_size // max(part.compress_size, 1)
            raise LoadError(
                f"{name}: part {one_line(part.filename)[:60]} would inflate {ratio}x "
                f"(at most {DOCX_MAX_RATIO}x); a zip bomb, not a Word document."
            )


def _read_pdf(data: bytes, path: Path) -> RawText:
    """Text layer of a PDF; a scanned PDF without one is rejected by ``read``."""
    import io
    import logging

    import pypdf

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            name = one_line(path.name)
            raise LoadError(f"{name}: the PDF is password-protected.", "Save an unprotected copy and add that.")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (LoadError, MemoryError, RecursionError):
        raise
    except Exception as error:  # noqa: BLE001 - pypdf raises many types for damaged files
        name = one_line(path.name)
        why = type(error).__name__
        raise LoadError(f"{name}: not a readable PDF ({why}).", "Re-export the PDF and add it again.") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    return RawText(str(path), text, title=_useful_title(title))


def _useful_title(title: object) -> str | None:
    """A document-properties title, unless it is a tool's placeholder or a file name."""
    text = str(title or "").strip()
    if not text or re.search(r"^(microsoft \w+ - |untitled|无标题)|\.\w{2,4}$", text, re.I):
        return None
    return text
