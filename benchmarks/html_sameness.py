"""Does the streaming HTML reader give what the BeautifulSoup one gave? Page by page.

Reads every page twice, with ``qa/load.py`` as it is and as it was at an
earlier revision (taken from git, so the old code is not kept in the tree),
and compares what ``read()`` returns: the text, title, URL, date and the
count of replaced bytes, or the error. The earlier revision needs
beautifulsoup4, which the project no longer installs:
``pip install beautifulsoup4`` into the environment before running this.

    python benchmarks/html_sameness.py --before 10a5a26 /usr/share/doc --every 1
    python benchmarks/html_sameness.py --before 10a5a26 --generated 3000

``--same-limits`` gives the earlier code today's element limit, so that
pages it refused are compared too. ``--every N`` reads every Nth page of the folders (sorted), ``--largest K``
adds the K largest pages, ``--generated N`` adds N random pages built from
the constructs the rules care about (furniture classes and roles, articles,
mains, h1s, ruby, <pre> whitespace, comments in titles, stray end tags).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa import load  # noqa: E402


def _before(revision: str) -> types.ModuleType:
    source = subprocess.check_output(["git", "-C", str(ROOT), "show", f"{revision}:qa/load.py"], text=True)
    module = types.ModuleType("qa._load_before")
    module.__package__ = "qa"
    sys.modules[module.__name__] = module
    exec(compile(source, f"qa/load.py@{revision}", "exec"), module.__dict__)
    return module


def _outcome(reader: types.ModuleType, path: Path) -> tuple:
    try:
        raw = reader.read(path, 20 * 2**20)
    except Exception as error:  # noqa: BLE001 - an error is an outcome to compare
        return ("error", type(error).__name__, getattr(error, "message", str(error)))
    return ("read", raw.text, raw.title, raw.url, raw.date, raw.replaced)


def _pages(folders: list[Path], every: int, largest: int) -> list[Path]:
    found = sorted(
        path
        for folder in folders
        for path in ([folder] if folder.is_file() else folder.rglob("*"))
        if path.suffix.lower() in (".html", ".htm") and path.is_file()
    )
    chosen = set(found[::every]) if every else set()
    chosen.update(sorted(found, key=lambda p: p.stat().st_size, reverse=True)[:largest])
    return sorted(chosen)


_TEXTS = ["交警大队开展安全宣传。", "The rule applies.", "  ", "\n  \n", "\t", "&amp; &lt;b&gt;", "字", "", "\xa0"]
_CLASSES = ["", "nav-wrapper", "share", "content", "sidebar", "menu", "ad", "main-nav", "post", "footer-links"]
_ROLES = ["", "navigation", "banner", "main", "search", "complementary"]
_TAGS = [
    "div", "p", "span", "b", "article", "main", "nav", "header", "footer", "aside", "section", "h1", "h2",
    "li", "ul", "br", "pre", "textarea", "ruby", "rt", "rp", "script", "style", "template", "table", "tr", "td",
    "time", "a", "noscript", "form", "center", "blockquote", "em",
]  # fmt: skip


def _element(rng: random.Random, depth: int) -> str:
    if depth > 6 or rng.random() < 0.3:
        pick = rng.random()
        if pick < 0.1:
            return f"<!--{rng.choice(_TEXTS)}-->"
        if pick < 0.13:
            return rng.choice(["</div>", "</p>", "</article>", "</b>", "<![CDATA[x]]>", "<?php x ?>"])
        return rng.choice(_TEXTS)
    tag = rng.choice(_TAGS)
    attrs = ""
    if rng.random() < 0.4:
        attrs += f' class="{rng.choice(_CLASSES)} {rng.choice(_CLASSES)}"'
    if rng.random() < 0.15:
        attrs += f' role="{rng.choice(_ROLES)}"'
    if rng.random() < 0.1:
        attrs += f' id="{rng.choice(_CLASSES)}"'
    if tag == "time" and rng.random() < 0.7:
        attrs += f' datetime="2023-0{rng.randint(1, 9)}-01"'
    inner = "".join(_element(rng, depth + 1) for _ in range(rng.randint(0, 4)))
    close = "" if rng.random() < 0.1 else f"</{tag}>"
    return f"<{tag}{attrs}>{inner}{close}"


def _generated(rng: random.Random) -> str:
    head = []
    for _ in range(rng.randint(0, 3)):
        key = rng.choice(["property", "name"])
        value = rng.choice(["og:title", "og:url", "date", "DATE", "article:published_time", "pubdate", "x"])
        content = rng.choice(["", " 标题 ", "https://example.com/a", "2023-05-06", "javascript:x"])
        head.append(f'<meta {key}="{value}" content="{content}">')
    if rng.random() < 0.5:
        head.append(f'<link rel="{rng.choice(["canonical", "noncanonical x", "alternate"])}" href="https://e.com/c">')
    if rng.random() < 0.8:
        title = rng.choice(["新闻 - 某某网", "a | b", "<!--x-->", "", " ", "标题_站点"])
        head.append(f"<title>{title}</title>")
    body = "".join(_element(rng, 0) for _ in range(rng.randint(1, 6)))
    shape = rng.random()
    if shape < 0.2:
        return body
    return f"<!doctype html><html><head>{''.join(head)}</head><body>{body}</body></html>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--largest", type=int, default=0)
    parser.add_argument("--generated", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=10, help="differences to print")
    parser.add_argument("--same-limits", action="store_true", help="give the earlier code today's element limit")
    args = parser.parse_args()
    before = _before(args.before)
    if args.same_limits:  # compare the text only: a page the earlier limit refused is read by both
        before.HTML_MAX_ELEMENTS = load.HTML_MAX_ELEMENTS
    pages = _pages(args.folders, args.every, args.largest)
    with tempfile.TemporaryDirectory() as scratch:
        rng = random.Random(args.seed)
        for index in range(args.generated):
            path = Path(scratch) / f"generated-{index:05d}.html"
            path.write_text(_generated(rng), encoding="utf-8")
            pages.append(path)
        same = read = 0
        seconds = {"before": 0.0, "now": 0.0}
        differ: list[tuple[Path, tuple, tuple]] = []
        for path in pages:
            started = time.process_time()
            old = _outcome(before, path)
            seconds["before"] += time.process_time() - started
            started = time.process_time()
            new = _outcome(load, path)
            seconds["now"] += time.process_time() - started
            read += old[0] == "read"
            if old == new:
                same += 1
            else:
                differ.append((path, old, new))
        print(f"{len(pages)} pages ({read} read before, the rest refused or empty):", end=" ")
        print(f"{same} identical, {len(differ)} differ")
        print(f"CPU seconds: before {seconds['before']:.1f}, now {seconds['now']:.1f}")
        for path, old, new in differ[: args.show]:
            print(f"--- {path}")
            for label, value in (("before", old), ("now", new)):
                print(f"  {label}: {str(value)[:600]!r}")


if __name__ == "__main__":
    main()
