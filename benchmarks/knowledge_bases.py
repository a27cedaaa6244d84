"""Two knowledge bases in one deployment: quality against each alone, isolation, asking during a rebuild.

Usage: python benchmarks/knowledge_bases.py [--work DIR] [--milvus] [--threads 2] [--json] [--save FILE]

One deployment (a folder index under ``WORK/folder``; with ``--milvus`` also
collections on a ``milvus-lite server`` started on a free 127.0.0.1 port)
holds two bases: ``default`` with the seeds and ``cmrc`` with the CMRC 2018
trial articles (``eval/cmrc2018-trial/docs``). Everything goes through
``qa.kb.Bases``, the door the CLI and the web use, with the bundled model
loaded once for every base and deployment. It measures:

1. quality: ``qa eval``'s scoring (``qa.evaluate.score`` over ``Bot.ask``,
   hybrid, as ``qa eval`` runs it) of the public set on ``default`` and of the
   CMRC trial questions on ``cmrc``, against the same set on a deployment
   holding only that base (a fresh index folder or collection prefix with the
   one base built). The alone deployments get a copy of the base's embedding
   cache (keyed by model and text), so the vectors are the same and only the
   index differs. Besides hit@1 / lead, it counts questions whose citations
   (document, offsets, order) or abstention differ between the two;
2. isolation: each base asked the OTHER base's questions; any citation from a
   document of the other base (or from any document not in the base asked)
   is counted. Zero by construction (separate indexes), here measured;
3. asking during a rebuild: ``--threads`` threads ask ``default`` the public
   questions over and over while ``cmrc`` is rebuilt (``build --full``; with
   ``--reencode`` its embedding cache is emptied first, so the rebuild also
   runs the encoder, competing for the CPU). Counted: failures (an exception,
   a citation from outside ``default``, or an answer that differs from the
   same question's answer before the rebuild), and latency p50 / p95 against
   the same loop with no rebuild running. The loop is bounded by
   ``--max-asks`` and ``--max-seconds``.

Prints the CPU, the load average and a table; ``--json`` prints the figures
as JSON instead. Builds reuse ``WORK`` between runs only through the
embedding caches: every index is built anew.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # milvus_server: how the tests start milvus-lite

from qa.config import Settings  # noqa: E402
from qa.embed import QuestionEncoder  # noqa: E402
from qa.evaluate import read_rows, score  # noqa: E402
from qa.kb import Bases  # noqa: E402
from qa.pipeline import Bot, Encoders  # noqa: E402
from qa.precision import read_cpu  # noqa: E402
from qa.present.json import answer_to_json  # noqa: E402

SEEDS = ROOT / "seeds"
PUBLIC = ROOT / "eval" / "questions.jsonl"
CMRC_DOCS = ROOT / "eval" / "cmrc2018-trial" / "docs"
CMRC_QUESTIONS = ROOT / "eval" / "cmrc2018-trial" / "questions.jsonl"
SETS = {  # base -> (articles, questions, label)
    "default": (SEEDS, PUBLIC, "public set (eval/questions.jsonl)"),
    "cmrc": (CMRC_DOCS, CMRC_QUESTIONS, "CMRC 2018 trial"),
}
OTHER = {"default": "cmrc", "cmrc": "default"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-knowledge-bases"),
                        help="folder for the indexes (default /tmp/qa-knowledge-bases; indexes are rebuilt each run)")
    parser.add_argument("--milvus", action="store_true", help="also run on Milvus (milvus-lite server on 127.0.0.1)")
    parser.add_argument("--only-milvus", action="store_true", help="run on Milvus only")
    parser.add_argument("--threads", type=int, default=2, help="threads asking during the rebuild (default 2)")
    parser.add_argument("--max-asks", type=int, default=5000, help="at most this many asks during the rebuild")
    parser.add_argument("--max-seconds", type=float, default=1200, help="stop asking after this long regardless")
    parser.add_argument("--reencode", action="store_true", help="empty cmrc's embedding cache before its rebuild")
    parser.add_argument("--phases", default="quality,isolation,rebuild",
                        help="which measurements to run (default quality,isolation,rebuild)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--save", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    say: Callable[[str], None] = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (
        lambda s: print(s, flush=True))

    cpu = read_cpu()
    result: dict[str, Any] = {"cpu": cpu.describe(), "cpus": os.cpu_count(), "load_before": _load(),
                              "threads": args.threads, "reencode": args.reencode, "backends": {}}
    say(f"CPU: {result['cpu']}, {result['cpus']} CPUs; load {result['load_before']}")
    rows = {base: read_rows(questions) for base, (_, questions, _) in SETS.items()}
    encoder = Encoders(Settings.load()).full()  # the bundled model, once: every base and deployment shares it
    say(f"encoder: {encoder.name}")

    backends = [] if args.only_milvus else ["folder"]
    if args.milvus or args.only_milvus:
        backends.append("milvus")
    for backend in backends:
        work = args.work / backend
        if work.exists():
            shutil.rmtree(work / "deployments", ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        if backend == "folder":
            result["backends"][backend] = run(work, None, encoder, rows, args, say, args.work / "caches")
        else:
            from milvus_server import running_server

            with running_server(work / "milvus-data") as server:
                say(f"milvus-lite server at {server.uri}")
                result["backends"][backend] = run(work, server.uri, encoder, rows, args, say, args.work / "caches")
    result["load_after"] = _load()
    if args.save:
        args.save.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print(table(result))
    return 0


def run(work: Path, milvus_uri: str | None, encoder: Any, rows: dict[str, list[dict]], args: argparse.Namespace,
        say: Callable[[str], None], caches: Path) -> dict[str, Any]:
    """All three measurements on one backend."""
    prefix = f"kb{uuid.uuid4().hex[:8]}"

    def deployment(name: str) -> Settings:
        settings = Settings.load(index_dir=work / "deployments" / name)
        if milvus_uri:
            settings = settings.with_(milvus_uri=milvus_uri, milvus_collection=f"{prefix}_{name.replace('-', '_')}")
        return settings

    out: dict[str, Any] = {"builds": {}}
    two = Bases(deployment("two"), encoder=encoder)
    two.create("cmrc", title="CMRC 2018 trial")
    bots = {name: two.server_open(name) for name in SETS}
    for name, bot in bots.items():
        out["builds"][f"two/{name}"] = _build(bot, SETS[name][0], caches / f"{name}.sqlite", say, f"{name} of two")
    alone: dict[str, Bot] = {}
    for name in SETS:
        bases = Bases(deployment(f"alone-{name}"), encoder=encoder)
        if name != "default":
            bases.create(name, title=SETS[name][2])
        alone[name] = bases.server_open(name)
        cache = caches / f"{name}.sqlite"
        out["builds"][f"alone/{name}"] = _build(alone[name], SETS[name][0], cache, say, f"{name} alone")
    doc_ids = {name: {i.doc_id for i in bot.documents()} for name, bot in bots.items()}
    out["documents"] = {name: [len(doc_ids[name]), sum(i.passages for i in bots[name].documents())] for name in SETS}

    phases = set(args.phases.split(","))
    out["quality"] = {}
    for name in SETS if "quality" in phases else []:
        together = _ask_all(bots[name], rows[name])
        by_itself = _ask_all(alone[name], rows[name])
        differ = sum(_shape(a) != _shape(b) for a, b in zip(together["answers"], by_itself["answers"], strict=True))
        out["quality"][name] = {"label": SETS[name][2], "two": _summary(score(rows[name], together["answers"])),
                                "alone": _summary(score(rows[name], by_itself["answers"])),
                                "answers_differing": differ, "questions": len(rows[name]),
                                "ask_ms_p50": {"two": together["p50"], "alone": by_itself["p50"]}}
        say(f"quality {name}: two {out['quality'][name]['two']}  alone {out['quality'][name]['alone']}  "
            f"differing {differ}/{len(rows[name])}")

    out["isolation"] = {}
    for name in SETS if "isolation" in phases else []:
        other = OTHER[name]
        asked = _ask_all(bots[name], rows[other])["answers"]
        cited = [c["doc_id"] for a in asked for c in a["citations"]]
        out["isolation"][name] = {
            "asked": f"{len(asked)} questions of {other}", "questions": len(asked),
            "abstained": sum(a["abstained"] for a in asked), "citations": len(cited),
            "from_other_base": sum(d in doc_ids[other] for d in cited),
            "from_outside_own_base": sum(d not in doc_ids[name] for d in cited),
        }
        say(f"isolation {name} asked {other}'s questions: {out['isolation'][name]}")

    out["during_rebuild"] = []
    if "rebuild" in phases:
        # How qa serve asks when its first question came before any build: the light question encoder, a model
        # of its own (the build loads the full one); then questions through the very encoder the build runs.
        own = Encoders(two.settings_of("default"))
        light = isinstance(own.query(), QuestionEncoder)  # loaded now, before the build could load the full one
        variants = [("question encoder of its own" if light else "full encoder of its own (no light path)",
                     Bot(two.settings_of("default"), encoders=own)),
                    ("the build's encoder, shared", bots["default"])]
        for label, asked in variants:
            out["during_rebuild"].append({"questions_through": label, **_during_rebuild(
                asked, bots["cmrc"], rows["default"], doc_ids["default"], two.settings_of("cmrc").index_dir,
                args, say)})
    return out


def _build(bot: Bot, folder: Path, cache: Path, say: Callable[[str], None], label: str) -> dict[str, Any]:
    """Build ``folder`` into ``bot``'s base, seeding its embedding cache from ``cache`` (and saving it back),
    so the bundled model encodes each text once across deployments and runs."""
    index_dir = bot.settings.index_dir
    index_dir.mkdir(parents=True, exist_ok=True)
    own = index_dir / "cache.sqlite"
    if cache.exists() and not own.exists():
        _copy_sqlite(cache, own)
    wall, cpu = time.perf_counter(), time.process_time()
    report = bot.build([folder])
    done = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
            "documents": len(report.added), "passages": report.passages, "encoded": report.embedded}
    say(f"built {label}: {done}")
    if report.embedded:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _copy_sqlite(own, cache)
    return done


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite file (its WAL included), through SQLite's backup."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _ask_all(bot: Bot, rows: list[dict]) -> dict[str, Any]:
    answers, times = [], []
    for row in rows:
        started = time.perf_counter()
        answers.append(answer_to_json(bot.ask(row["question"])))
        times.append(time.perf_counter() - started)
    return {"answers": answers, "p50": round(statistics.median(times) * 1000, 1)}


def _shape(answer: dict) -> tuple:
    """What must not change between two deployments holding the same base: abstention and each citation."""
    return answer["abstained"], tuple((c["doc_id"], c["start"], c["end"]) for c in answer["citations"])


def _summary(report: dict) -> dict[str, Any]:
    keep = ("answerable", "hit@1", "hit@5", "mrr", "lead", "unanswerable", "abstained_unanswerable",
            "abstained_answerable")
    return {k: report.get(k) for k in keep}


def _during_rebuild(asked: Bot, rebuilt: Bot, rows: list[dict], own: set[str], rebuilt_dir: Path,
                    args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    """``asked`` answers ``rows`` from ``args.threads`` threads, first alone, then while ``rebuilt`` is rebuilt."""
    before = {row["question"]: _shape(answer_to_json(asked.ask(row["question"]))) for row in rows}

    def loop(stop: Callable[[int, float], bool]) -> dict[str, Any]:
        lock = threading.Lock()
        state: dict[str, Any] = {"asks": 0, "failures": 0, "foreign": 0, "changed": 0, "errors": []}
        times: list[float] = []
        started = time.perf_counter()

        def worker(offset: int) -> None:
            i = offset
            while True:
                with lock:
                    if stop(state["asks"], time.perf_counter() - started):
                        return
                    state["asks"] += 1
                question = rows[i % len(rows)]["question"]
                i += 1
                t0 = time.perf_counter()
                try:
                    answer = answer_to_json(asked.ask(question))
                except Exception as error:  # noqa: BLE001 - any failure is what is counted
                    with lock:
                        state["failures"] += 1
                        state["errors"].append(f"{type(error).__name__}: {error}"[:200])
                    continue
                elapsed = time.perf_counter() - t0
                foreign = sum(c["doc_id"] not in own for c in answer["citations"])
                with lock:
                    times.append(elapsed)
                    state["foreign"] += foreign
                    state["changed"] += _shape(answer) != before[question]

        threads = [threading.Thread(target=worker, args=(n * len(rows) // max(1, args.threads),))
                   for n in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        state["errors"] = state["errors"][:5]
        return {**state, "seconds": round(time.perf_counter() - started, 1), **_percentiles(times)}

    quiet = loop(lambda n, _: n >= len(rows) * 2)
    say(f"asking {asked.settings.kb} with no rebuild: {quiet}")

    if args.reencode:
        (rebuilt_dir / "cache.sqlite").unlink(missing_ok=True)
    build: dict[str, Any] = {}

    def rebuild() -> None:
        wall = time.perf_counter()
        try:
            report = rebuilt.build([SETS[rebuilt.settings.kb][0]], full=True)
            build.update(passages=report.passages, encoded=report.embedded, documents=len(report.unchanged)
                         + len(report.added) + len(report.updated))
        except Exception as error:  # noqa: BLE001 - reported, not raised: the asking half still reports
            build["error"] = f"{type(error).__name__}: {error}"
        build["wall_s"] = round(time.perf_counter() - wall, 1)

    load, cpu = _load(), time.process_time()
    builder = threading.Thread(target=rebuild)
    builder.start()
    during = loop(lambda n, s: not builder.is_alive() or n >= args.max_asks or s >= args.max_seconds)
    builder.join()
    during["load"] = [load, _load()]
    build["process_cpu_s"] = round(time.process_time() - cpu, 1)
    build["documents_after"] = len(rebuilt.documents())
    say(f"asking {asked.settings.kb} while {rebuilt.settings.kb} was rebuilt ({build}): {during}")
    return {"asked": asked.settings.kb, "rebuilt": rebuilt.settings.kb, "rebuild": build,
            "quiet": quiet, "during": during}


def _percentiles(times: list[float]) -> dict[str, Any]:
    if not times:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(times)
    at = lambda share: round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)  # noqa: E731
    return {"p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": round(ordered[-1] * 1000, 1)}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def table(result: dict[str, Any]) -> str:
    lines = [f"CPU: {result['cpu']}, {result['cpus']} CPUs; load {result['load_before']} -> {result['load_after']}",
             ""]
    for backend, r in result["backends"].items():
        docs = r["documents"]
        lines.append(f"## {backend}: default {docs['default'][0]} documents / {docs['default'][1]} passages, "
                     f"cmrc {docs['cmrc'][0]} / {docs['cmrc'][1]}")
        lines.append("")
        if r["quality"]:
            lines.append("| set | deployment | hit@1 | hit@5 | MRR | lead | abstained: unanswerable | "
                         "abstained: answerable | answers differing |")
            lines.append("|---|---|---|---|---|---|---|---|---|")
        for name, q in r["quality"].items():
            for where, label in (("two", f"base `{name}` of two"), ("alone", "alone")):
                s = q[where]
                differ = f"{q['answers_differing']}/{q['questions']}" if where == "two" else ""
                lines.append(f"| {q['label']} | {label} | {s['hit@1']} | {s['hit@5']} | {s['mrr']} | {s['lead']} | "
                             f"{s['abstained_unanswerable']}/{s['unanswerable']} | "
                             f"{s['abstained_answerable']}/{s['answerable']} | {differ} |")
        if r["isolation"]:
            lines.append("")
            lines.append("| base asked | questions | abstained | citations | from the other base | "
                         "from outside the base |")
            lines.append("|---|---|---|---|---|---|")
        for name, i in r["isolation"].items():
            lines.append(f"| {name} | {i['asked']} | {i['abstained']} | {i['citations']} | {i['from_other_base']} | "
                         f"{i['from_outside_own_base']} |")
        lines.append("")
        for d in r["during_rebuild"]:
            b = d["rebuild"]
            lines.append(f"Asking `{d['asked']}` ({result['threads']} threads, {d['questions_through']}) while "
                         f"`{d['rebuilt']}` is rebuilt (build --full{', cache emptied' if result['reencode'] else ''}: "
                         f"{b.get('wall_s')} s, {b.get('encoded')} passages encoded"
                         f"{', ' + b['error'] if 'error' in b else ''}):")
            lines.append("")
            lines.append("| | asks | failures | citations from outside | answers changed | p50 ms | p95 ms | max ms | "
                         "seconds |")
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for phase, label in (("quiet", "no rebuild running"), ("during", "during the rebuild")):
                q = d[phase]
                lines.append(f"| {label} | {q['asks']} | {q['failures']} | {q['foreign']} | {q['changed']} | "
                             f"{q['p50_ms']} | {q['p95_ms']} | {q['max_ms']} | {q['seconds']} |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
