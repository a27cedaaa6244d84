"""The scoring behind ``qa eval`` and the quality tests: what counts as a hit, and the figures."""

from __future__ import annotations

import pytest

from qa.evaluate import _is_hit, format_report, score


def citation(rank: int, text: str, path: str = "/c/000_a.txt") -> dict:
    return {"rank": rank, "text": text, "path": path}


def result(citations: list[dict], abstained: bool = False, lead: str = "") -> dict:
    return {"citations": citations, "abstained": abstained, "lead": [{"text": lead, "citation": 1}] if lead else []}


def test_a_hit_holds_the_answer_and_comes_from_the_named_file():
    row = {"question": "q", "answer": "43名", "doc": "000_a.txt"}
    assert _is_hit(citation(1, "共有43名党员"), row)
    assert not _is_hit(citation(1, "共有34名党员"), row)  # the answer text must be there
    assert not _is_hit(citation(1, "共有43名党员", "/c/001_b.txt"), row)  # from another article
    assert _is_hit(citation(1, "共有43名党员", "/elsewhere/000_a.txt"), row)  # the file name decides, not the folder
    assert _is_hit(citation(1, "共有43名党员", "/c/001_b.txt"), {"question": "q", "answer": "43名"})  # no doc named


def test_scores_rank_mrr_lead_and_abstention():
    rows = [
        {"question": "a", "answer": "甲", "kind": "fact"},
        {"question": "b", "answer": "乙", "kind": "paraphrase"},
        {"question": "c", "answer": "丙", "kind": "fact"},
        {"question": "d", "answer": None},
        {"question": "e", "answer": None},
    ]
    results = [
        result([citation(1, "甲在这里"), citation(2, "别的")], lead="甲在这里"),  # hit at 1, lead right
        result([citation(1, "别的"), citation(2, "还是别的"), citation(3, "乙在第三")], lead="别的"),  # hit at 3
        result([citation(r, "无关") for r in range(1, 6)] + [citation(6, "丙太靠后")], abstained=True),  # beyond 5
        result([citation(1, "无关")], abstained=True),  # rightly abstained
        result([citation(1, "无关")]),  # answered an unanswerable question
    ]
    report = score(rows, results)
    assert report["answerable"] == 3 and report["unanswerable"] == 2
    assert report["hit@1"] == round(1 / 3, 3) and report["hit@5"] == round(2 / 3, 3)
    assert report["mrr"] == round((1 + 1 / 3 + 1 / 6) / 3, 3)
    assert report["lead"] == round(1 / 3, 3)
    assert report["abstained_unanswerable"] == 1 and report["abstained_answerable"] == 1
    assert report["abstention_precision"] == 0.5 and report["abstention_recall"] == 0.5
    assert report["kinds"]["fact"]["n"] == 2 and report["kinds"]["paraphrase"]["hit@5"] == 1.0
    assert report["kinds"]["unanswerable"] == {"n": 2}
    assert [m["question"] for m in report["misses"]] == ["b", "c"] and report["misses"][0]["rank"] == 3
    assert "hit@1 0.333" in format_report(report)


def test_rows_and_results_must_pair_up():
    """A missing result must not shorten the set silently (and raise every figure)."""
    rows = [{"question": "a", "answer": "甲"}, {"question": "b", "answer": "乙"}]
    with pytest.raises(ValueError):
        score(rows, [result([citation(1, "甲")])])
