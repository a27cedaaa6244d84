"""Compare fusion methods and weights, and calibrate abstention, on question sets.

Usage: python benchmarks/tune_retrieval.py --index-dir DIR QUESTIONS.jsonl [...]

Each question is encoded and searched once; every variant then re-fuses the
same candidates, so the comparison is cheap and exact. The abstention grid
shows, for each threshold triple, how many unanswerable questions abstain
(want: all) and how many answerable ones do (want: none). Prints tables only;
it changes nothing.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from qa import abstain, lead, retrieve
from qa.config import Settings
from qa.evaluate import read_rows, score
from qa.pipeline import Asker
from qa.present.json import answer_to_json

VARIANTS = [("bm25", "weighted", 0.5), ("dense", "weighted", 0.5), ("hybrid", "rrf", 0.5)] + [
    ("hybrid", "weighted", w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="+", type=Path)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--grid", action="store_true", help="also print the abstention threshold grid")
    parser.add_argument("--rules", action="store_true", help="also print abstentions with each new rule disabled")
    args = parser.parse_args(argv)
    asker = Asker(Settings.load(index_dir=args.index_dir))
    for path in args.questions:
        rows = read_rows(path)
        found = [asker.candidates(r["question"]) for r in rows]
        print(f"\n{path} ({len(rows)} questions)")
        print(f"{'variant':<22}{'hit@1':>7}{'hit@5':>7}{'MRR':>7}{'lead':>7}  paraphrase hit@1  abstained(unans/ans)")
        for mode, fusion, weight in VARIANTS:
            results = [answer_to_json(asker.answer(f, mode=mode, fusion=fusion, weight=weight)) for f in found]
            rep = score(rows, results)
            para = rep["kinds"].get("paraphrase", {}).get("hit@1", "-")
            name = f"{mode}/{fusion}" + (f" w={weight}" if fusion == "weighted" and mode == "hybrid" else "")
            print(
                f"{name:<22}{rep['hit@1']:>7}{rep['hit@5']:>7}{rep['mrr']:>7}{rep['lead']:>7}  {para!s:>16}"
                f"  {rep['abstained_unanswerable']}/{rep['unanswerable']},"
                f" {rep['abstained_answerable']}/{rep['answerable']}"
            )
        if args.grid:
            _grid(asker, rows, found)
        if args.rules:
            _rules(asker, rows, found)


def _grid(asker: Asker, rows: list[dict], found: list) -> None:
    signals = [asker.answer(f).signals for f in found]
    unans = [s for r, s in zip(rows, signals, strict=True) if r.get("answer") is None]
    ans = [s for r, s in zip(rows, signals, strict=True) if r.get("answer") is not None]
    print("unanswerable signals:", sorted((s["coverage"], s["dense"]) for s in unans))
    print("lowest answerable coverage:", sorted((s["coverage"] or 0.0, s["dense"]) for s in ans)[:8])
    print(f"{'min_cov':>8}{'weak_cov':>9}{'min_dense':>10}  abstained unanswerable / answerable")
    saved = abstain.MIN_COVERAGE, abstain.WEAK_COVERAGE, abstain.MIN_DENSE
    try:
        for mc, wc, md in itertools.product((0.25, 0.35, 0.45), (0.5, 0.6, 0.7), (0.80, 0.82, 0.84)):
            abstain.MIN_COVERAGE, abstain.WEAK_COVERAGE, abstain.MIN_DENSE = mc, wc, md
            a = sum(_abstains(s) for s in unans)
            b = sum(_abstains(s) for s in ans)
            print(f"{mc:>8}{wc:>9}{md:>10}  {a}/{len(unans)}  {b}/{len(ans)}")
    finally:
        abstain.MIN_COVERAGE, abstain.WEAK_COVERAGE, abstain.MIN_DENSE = saved


def _abstains(signals: dict) -> bool:
    """The threshold rules alone, on a question's recorded coverage and dense score."""
    return abstain.decide(hits=1, words=1, coverage=signals["coverage"], dense=signals["dense"]).abstain


def _rules(asker: Asker, rows: list[dict], found: list) -> None:
    """Abstentions with the missing-name rule, its article guard, or the evidence rule disabled."""

    def count(label: str) -> None:
        results = [asker.answer(f) for f in found]
        unans = sum(r.abstained for row, r in zip(rows, results, strict=True) if row.get("answer") is None)
        ans = [
            row.get("id") for row, r in zip(rows, results, strict=True) if row.get("answer") is not None and r.abstained
        ]
        print(f"{label:<34} unanswerable abstained {unans}, answerable abstained {len(ans)} {ans[:10]}")

    names, evidence = retrieve.missing_names, lead.has_evidence
    try:
        count("all rules")
        retrieve.missing_names = lambda n, f, a: []
        count("without missing names")
        retrieve.missing_names = lambda n, f, a: names(n, f, [])
        count("missing names without article guard")
        retrieve.missing_names, lead.has_evidence = names, (lambda *a: True)
        count("without answer-type evidence")
        retrieve.missing_names = lambda n, f, a: []
        count("without both")
    finally:
        retrieve.missing_names, lead.has_evidence = names, evidence


if __name__ == "__main__":
    main()
