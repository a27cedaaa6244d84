"""The performance tables in README.md and benchmarks/README.md, rendered from `qa bench --json` output.

Why generated: a table copied by hand drifts from the run it came from. The
runs are kept as JSON in ``benchmarks/results/`` (one file per `qa bench`
run, named for its collection size); this script renders one table from
them and writes it between the ``<!-- qa-bench-table -->`` markers of both
files. ``tests/test_docs.py`` renders it again and fails when the committed
tables and the committed runs disagree.

    qa bench --passages 100000 --first-build --json > benchmarks/results/qa-bench-100000.json
    qa bench --passages 1000000 --json > benchmarks/results/qa-bench-1000000.json
    python benchmarks/bench_table.py            # rewrite the tables
    python benchmarks/bench_table.py --check    # exit 1 if a table is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = (ROOT / "README.md", ROOT / "benchmarks" / "README.md")
START, END = "<!-- qa-bench-table -->", "<!-- /qa-bench-table -->"


def _load(figures: dict | None) -> str:
    """`` (load A–B)``: the load averages seen while a figure was measured."""
    seen = (figures or {}).get("load")
    if not seen:
        return ""
    seen = seen if isinstance(seen, list) else [seen]
    low, high = f"{min(seen):.1f}", f"{max(seen):.1f}"
    return f" (load {low})" if low == high else f" (load {low}–{high})"


def _ms(figures: dict | None, key: str) -> str:
    if not figures or key not in figures:
        return ""
    s = figures[key]
    return f"{s['p50']:.2f} / {s['p95']:.2f} ms{_load(figures)}"


def _first_time(r: dict) -> str:
    """Each of the unseen questions asked once (the repeated questions' figure is a steady state)."""
    first = r.get("big", {}).get("first_time")
    if not first:
        return ""
    return f"{first['total']['p95']:.2f} / {first['total_cpu']['p95']:.2f} ms ({first['n']} questions)"


def _add(r: dict) -> str:
    add = r.get("add")
    if not add:
        return ""
    rests = [x["rest_s"] for x in add["rounds"]]
    loads = {"load": [x["load"] for x in add["rounds"] if "load" in x]}
    return f"{add['rest_s']:.2f} s ({min(rests):.2f}–{max(rests):.2f}){_load(loads)}"


def _cold(r: dict) -> str:
    c = r.get("cold", {}).get("seeds")
    if not c:
        return ""
    return f"{c['wall']['p50'] / 1000:.2f} s wall, {c['cpu']['p50'] / 1000:.2f} s CPU{_load(c)}"


def _build(key: str) -> Callable[[dict], str]:
    def cell(r: dict) -> str:
        b = r.get(key)
        if not b:
            return ""
        if b.get("error"):
            return f"error: {b['error']}"
        return f"{b['rss_mib']} MiB, {b['wall_s']:.0f} s{_load(b)}"

    return cell


def _encoder(r: dict) -> str:
    enc = r.get("encoder", {})
    chosen = next(((k, v) for k, v in enc.get("rows", {}).items() if "(chosen)" in k), None)
    if not chosen:
        return ""
    label, row = chosen
    precision = label.split(",")[-1].replace("(chosen)", "").strip()
    return f"{row['p50']} passages/s at {precision}, {enc['ratio']}× sentence-transformers{_load(enc)}"


ROWS: list[tuple[str, Callable[[dict], str], str]] = [
    ("hybrid retrieval, query already encoded, repeated questions, p50 / p95", lambda r: _ms(r.get("big"), "total"),
     "p95 ≤ 8 ms at 100,000"),
    ("  the same in CPU time", lambda r: _ms({**r.get("big", {}), "load": None}, "total_cpu"), ""),
    ("  a question asked the first time, wall / CPU p95", _first_time, "p95 ≤ 8 ms at 100,000"),
    ("  of which fusion, lookups, abstention, lead", lambda r: _ms({**r.get("big", {}), "load": None}, "fusion"), ""),
    ("add one document, beyond its encoding (median of 3)", _add, "≤ 2 s at 1,000,000"),
    ("`qa ask` cold start on the seeds, p50 of 5", _cold, "≤ 2.0 s"),
    ("`qa build` of the seeds, peak RSS, model cache warm", _build("build"), "≤ 1.0 GB"),
    ("the same, empty model cache (a new machine)", _build("build_first"), "≤ 1.0 GB"),
    ("peak RSS of `qa ask` at this size", lambda r: f"{r['rss_mib']['ask_big']} MiB" if r.get("rss_mib") else "",
     "≤ 2 GiB"),
    ("encoder on the seeds' passages", _encoder, "≥ 2.2× with native bf16"),
]


def runs() -> list[tuple[str, dict]]:
    """The kept runs, smallest collection first."""
    found = [(path.name, json.loads(path.read_text(encoding="utf-8"))) for path in RESULTS.glob("*.json")]
    return sorted(found, key=lambda item: item[1]["n"])


def render(kept: list[tuple[str, dict]]) -> str:
    """The markdown table (with the CPU and commands above it) for the given runs."""
    if not kept:
        return "No `qa bench` run is kept in benchmarks/results/."
    cpus = sorted({f"{r['cpu']['model']} ({', '.join(r['cpu']['flags'])}), {r['cpus']} CPUs" for _, r in kept})
    head = ["", *[f"{r['n']:,} passages" for _, r in kept], "target"]
    lines = [
        f"Rendered by `python benchmarks/bench_table.py` from {', '.join(f'`benchmarks/results/{n}`' for n, _ in kept)}"
        f" (`qa bench --passages N --json`); CPU: {'; '.join(cpus)}.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, cell, target in ROWS:
        cells = [cell(r) or "–" for _, r in kept]
        if all(c == "–" for c in cells):
            continue
        lines.append("| " + " | ".join([name, *cells, target]) + " |")
    return "\n".join(lines)


def replace(text: str, table: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"no {START} … {END} markers")
    return pattern.sub(lambda _: f"{START}\n{table}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table differs from the kept runs")
    args = parser.parse_args(argv)
    table = render(runs())
    stale = []
    for path in TARGETS:
        text = path.read_text(encoding="utf-8")
        new = replace(text, table)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"stale: {', '.join(str(p.relative_to(ROOT)) for p in stale)}; run python benchmarks/bench_table.py",
              file=sys.stderr)
        return 1
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
