"""``qa eval`` on the folder index and on Milvus, side by side (README, "Scaling out").

Starts ``milvus-lite server`` on a free 127.0.0.1 port, then for each set runs
the README's commands twice in fresh processes: ``qa build`` and ``qa eval``
into a folder, then the same with ``QA_MILVUS_URI`` pointing at the server.
The Milvus build reuses the folder's embedding cache, so it encodes nothing.

    python benchmarks/milvus_eval.py [--work /tmp/qa-milvus-eval]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SETS = {
    "public set (eval/questions.jsonl)": (ROOT / "seeds", ROOT / "eval" / "questions.jsonl"),
    "CMRC 2018 trial": (ROOT / "eval" / "cmrc2018-trial" / "docs",
                        ROOT / "eval" / "cmrc2018-trial" / "questions.jsonl"),
}


def qa(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "qa", *args], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise SystemExit(f"qa {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def main() -> None:
    from milvus_server import running_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-milvus-eval"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    with running_server(args.work / "milvus-data") as server:
        for n, (label, (docs, questions)) in enumerate(SETS.items()):
            base = dict(os.environ, QA_INDEX_DIR=str(args.work / f"set{n}"))
            base.pop("QA_MILVUS_URI", None)
            for engine, env in (("FAISS", base), ("Milvus", dict(base, QA_MILVUS_URI=server.uri,
                                                                   QA_MILVUS_COLLECTION=f"eval{n}"))):
                built = qa(env, "build", str(docs)).strip().splitlines()[-1]
                report = json.loads(qa(env, "eval", str(questions), "--json"))
                rows.append((label, engine, report, built))
                print(label, engine, built, json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}),
                      flush=True)
    print("\n| set | index | hit@1 | hit@5 | MRR | lead | abstained: unanswerable | abstained: answerable |")
    print("|---|---|---|---|---|---|---|---|")
    for label, engine, r, _ in rows:
        print(f"| {label} | {engine} | {r.get('hit@1')} | {r.get('hit@5')} | {r.get('mrr')} | {r.get('lead')} | "
              f"{r['abstained_unanswerable']}/{r['unanswerable']} | {r['abstained_answerable']}/{r['answerable']} |")


if __name__ == "__main__":
    main()
