"""Peak memory of reading one HTML page, against the page's size.

Each page is read by ``qa.load.read`` in a fresh subprocess, twice: once
for the peak resident set size over what the process held just before
(lxml's own allocations included; the peak is reset through
``/proc/self/clear_refs`` first, so imports do not count), once under tracemalloc for the peak of
Python's allocations. Both include the file's bytes and its decoded text,
which any reader holds. Pages: the given files, and pages made here:

- ``cjk-news``: a 5 MB Chinese news page, paragraphs in an <article> beside
  navigation, sharing and footer blocks;
- ``table-cells``: 99,000 elements of ``<td>1</td>`` rows (as dense as pages get);
- ``tiny-bold``: 99,000 ``<b>字</b>`` (the hostile page, just under the element limit);
- ``furniture``: 30,000 small ``<div class="share">`` blocks between paragraphs
  (each one a candidate the reader must be able to drop).

    python benchmarks/html_memory.py /root/.rustup/toolchains/*/share/doc/rust/html/reference/print.html
    python benchmarks/html_memory.py --before 10a5a26   # the same pages with qa/load.py of that revision

``--before`` loads ``qa/load.py`` of an earlier revision from git (it needs
beautifulsoup4 installed) to show what the BeautifulSoup reader cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, subprocess, sys, time, types
sys.path.insert(0, sys.argv[1])
path, revision, mode = sys.argv[2], sys.argv[3], sys.argv[4]
if revision:
    source = subprocess.check_output(["git", "-C", sys.argv[1], "show", revision + ":qa/load.py"], text=True)
    load = types.ModuleType("qa._load_before")
    load.__package__ = "qa"
    sys.modules[load.__name__] = load
    exec(compile(source, "qa/load.py", "exec"), load.__dict__)
else:
    from qa import load
import pathlib, tempfile
warm = pathlib.Path(tempfile.mkdtemp()) / "warm.html"
warm.write_text("<html><head><title>t</title></head><body><article><p>暖。</p></article></body></html>")
load.read(warm)  # imports lxml (and bs4) and their first allocations before the measure

def status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

if mode == "trace":
    import tracemalloc
    tracemalloc.start()
    load.read(pathlib.Path(path), 0)
    print(json.dumps({"trace_peak": tracemalloc.get_traced_memory()[1]}))
else:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from what the process holds now
    before = status("VmRSS")
    started = time.process_time()
    raw = load.read(pathlib.Path(path), 0)
    cpu = time.process_time() - started
    peak = status("VmHWM")
    print(json.dumps({"rss_peak": peak - before, "cpu": cpu, "chars": len(raw.text)}))
"""


def _made(folder: Path) -> list[Path]:
    para = "交警大队党总支现有党员54人，其中民警47人。该党总支每周一集中学习，开展安全宣传进社区活动。" * 3
    nav = "<nav><ul>" + "".join(f"<li><a href='/c/{i}'>栏目{i}</a></li>" for i in range(40)) + "</ul></nav>"
    share = "<div class='share'>分享到：微信 微博</div>"
    body = "".join(f"<p>{para}</p>" + (share if i % 50 == 0 else "") for i in range(20_000))
    pages = {
        "cjk-news": f"<html><head><title>新闻 - 某某网</title></head><body>{nav}<article><h1>标题</h1>{body}"
        "</article><footer>版权所有</footer></body></html>",
        "table-cells": "<html><body><table>" + "<tr><td>1</td><td>2</td></tr>" * 33_000 + "</table></body></html>",
        "tiny-bold": "<html><body><p>" + "<b>字</b>" * 99_000 + "</p></body></html>",
        "furniture": "<html><body>"
        + "".join(f"<p>{para[:40]}</p><div class='share'>分享{i}</div>" for i in range(30_000))
        + "</body></html>",
    }
    paths = []
    for name, page in pages.items():
        path = folder / f"{name}.html"
        path.write_text(page, encoding="utf-8")
        paths.append(path)
    return paths


def _measure(path: Path, revision: str, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), str(path), revision, mode],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--before", default="", help="a git revision whose qa/load.py to measure instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        pages = [*args.pages, *_made(Path(scratch))]
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?")
        print(f"{cpu}; load average {open('/proc/loadavg').read().split()[0]}; {args.before or 'this tree'}")
        columns = ("page", "size MB", "peak RSS MB", "ratio", "traced MB", "ratio", "CPU s")
        print("{:<14} {:>8} {:>12} {:>6} {:>10} {:>6} {:>6}".format(*columns))
        for path in pages:
            size = path.stat().st_size
            rss = _measure(path, args.before, "rss")
            traced = _measure(path, args.before, "trace")
            peak, trace = rss["rss_peak"], traced["trace_peak"]
            print(
                f"{path.stem[:14]:<14} {size / 2**20:8.2f} {peak / 2**20:12.1f} {peak / size:6.1f}"
                f" {trace / 2**20:10.1f} {trace / size:6.1f} {rss['cpu']:6.2f}"
            )


if __name__ == "__main__":
    main()
