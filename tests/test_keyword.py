"""BM25: our vectorised build gives bm25s's own weights; updates equal a rebuild."""

from __future__ import annotations

import bm25s
import numpy as np

from qa.index.keyword import B, K1, KeywordIndex

CORPUS = [
    ["蒙阴", "交警", "大队", "党建", "品牌"],
    ["交警", "平安", "畅行", "平安"],
    ["苹果", "香蕉", "苹果", "苹果", "西瓜"],
    ["大队", "比赛", "冠军"],
    [],
    ["党建", "工作", "会议", "党建", "交警"],
]


def random_corpus(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    words = [f"词{i}" for i in range(300)]
    p = 1.0 / np.arange(1, 301)
    p /= p.sum()
    return [[words[j] for j in rng.choice(300, size=rng.integers(0, 40), p=p)] for _ in range(n)]


def scores_of(index: KeywordIndex, tokens: list[str]) -> dict[int, float]:
    return dict(index.search(tokens, len(index)))


def test_weights_match_bm25s_index_on_the_same_tokens():
    corpus = random_corpus(400)
    ours = KeywordIndex.build(list(range(400)), corpus)
    reference = bm25s.BM25(k1=K1, b=B, method="lucene")
    reference.index(corpus, show_progress=False)
    for query in (["词0", "词5"], ["词17"], ["词250", "词3", "词3"]):
        expected = reference.get_scores(query)
        got = scores_of(ours, query)
        for doc, score in enumerate(expected):
            assert abs(got.get(doc, 0.0) - score) < 1e-4 * max(1.0, score), (query, doc)


def test_search_ranks_and_maps_to_passage_ids():
    ids = [10, 20, 30, 40, 50, 60]
    index = KeywordIndex.build(ids, CORPUS)
    hits = index.search(["苹果"], 5)
    assert [h[0] for h in hits] == [30]
    hits = index.search(["党建", "交警"], 10)
    assert {h[0] for h in hits} == {10, 20, 60}
    assert hits[0][0] in (10, 60) and hits[0][1] >= hits[-1][1] > 0
    assert index.search(["没有的词"], 5) == [] and index.search([], 5) == []
    assert index.doc_freq("交警") == 3 and index.doc_freq("没有") == 0


def test_a_short_tail_does_not_outrank_the_passage_that_names_the_subject_twice():
    # bm25s' defaults (k1 1.5, b 0.75) ranked the 8-word tail first; CMRC lost such questions to closing passages
    main = ["航路", "航路"] + [f"词{i}" for i in range(38)]
    tail = ["航路", "其后", "停航", "结束", "至今", "仍存", "码头", "遗址"]
    filler = [[f"别{i}{j}" for j in range(20)] for i in range(2)]
    hits = KeywordIndex.build([1, 2, 3, 4], [main, tail, *filler]).search(["航路"], 2)
    assert [pid for pid, _ in hits] == [1, 2]


def test_an_index_saved_with_other_bm25_parameters_loads_with_the_current_ones(tmp_path, monkeypatch):
    import qa.index.keyword as keyword

    corpus = random_corpus(60, seed=3)
    current = KeywordIndex.build(list(range(60)), corpus)
    monkeypatch.setattr(keyword, "K1", 1.5)
    monkeypatch.setattr(keyword, "B", 0.75)
    KeywordIndex.build(list(range(60)), corpus).save(tmp_path / "old")
    monkeypatch.undo()
    loaded = KeywordIndex.load(tmp_path / "old")
    for query in (["词0", "词5"], ["词17"]):
        want, got = scores_of(current, query), scores_of(loaded, query)
        assert want.keys() == got.keys() and all(abs(want[d] - got[d]) < 1e-5 for d in want), query


def test_update_equals_rebuild_from_scratch(tmp_path):
    corpus = random_corpus(300, seed=1)
    ids = list(range(1000, 1300))
    base = KeywordIndex.build(ids, corpus)
    base.save(tmp_path / "base")
    loaded = KeywordIndex.load(tmp_path / "base")
    removed = set(ids[::7])
    extra = random_corpus(25, seed=2) + [["全新", "词0"]]
    extra_ids = list(range(5000, 5000 + len(extra)))
    updated = loaded.updated(removed, extra_ids, extra)
    kept = [(i, t) for i, t in zip(ids, corpus, strict=True) if i not in removed]
    rebuilt = KeywordIndex.build([i for i, _ in kept] + extra_ids, [t for _, t in kept] + extra)
    for query in (["词0"], ["词3", "词40"], ["全新"]):
        a, b = scores_of(updated, query), scores_of(rebuilt, query)
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a), query
    assert not removed & {i for i, _ in updated.search(["词0", "词1"], 400)}


def test_save_load_round_trip_and_empty(tmp_path):
    index = KeywordIndex.build([1, 2, 3, 4, 5, 6], CORPUS)
    index.save(tmp_path / "k")
    for mmap in (True, False):
        loaded = KeywordIndex.load(tmp_path / "k", mmap=mmap)
        assert loaded.search(["党建"], 3) == index.search(["党建"], 3)
    empty = KeywordIndex.build([], [])
    empty.save(tmp_path / "e")
    again = KeywordIndex.load(tmp_path / "e")
    assert len(again) == 0 and again.search(["党建"], 3) == []
    grown = again.updated([], [9], [["党建"]])
    assert grown.search(["党建"], 3)[0][0] == 9


# -- delta segments ---------------------------------------------------------------------------
def segmented(tmp_path, base_ids, base_tokens, changes) -> tuple:
    """A saved base, then ``changes`` (remove ids, add ids, add tokens) folded into one delta; loaded back."""
    from qa.index.keyword import KeywordDelta, KeywordSegments

    KeywordIndex.build(base_ids, base_tokens).save(tmp_path / "base")
    base = KeywordIndex.load(tmp_path / "base")
    delta = KeywordDelta()
    for remove, add_ids, add_tokens in changes:
        delta = delta.changed(base.vocab, remove, add_ids, add_tokens)
    delta.save(tmp_path / "delta")
    return base, KeywordSegments(base, KeywordDelta.load(tmp_path / "delta"))


def test_a_delta_scores_exactly_as_a_full_build_of_the_same_passages(tmp_path):
    corpus = random_corpus(600, seed=3)
    extra = random_corpus(120, seed=4) + [["新词甲", "词1"], ["新词甲", "新词乙", "新词乙"]]
    live = dict(enumerate(corpus[:500]))
    changes, next_id = [], 500
    for step in range(4):  # several adds and removes; some removed rows are the delta's own
        remove = {i for i in live if i % 7 == step} | ({next_id - 1} if step else set())
        add = extra[step * 30 : (step + 1) * 30] + ([extra[-2 + step]] if step < 2 else [])
        ids = list(range(next_id, next_id + len(add)))
        next_id += len(add)
        for i in remove:
            live.pop(i, None)
        live.update(zip(ids, add, strict=True))
        changes.append((remove, ids, add))
    base, segments = segmented(tmp_path, list(range(500)), corpus[:500], changes)
    full = KeywordIndex.build(sorted(live), [live[i] for i in sorted(live)])
    assert len(segments) == len(full) == len(live)
    queries = [["词0"], ["词1", "词2", "词1"], ["词250", "词3"], ["新词甲"], ["新词乙", "词7"], ["没有"], []]
    queries += [corpus[i][:4] for i in range(0, 500, 37)]
    for query in queries:
        got, want = segments.search(query, len(full)), full.search(query, len(full))
        assert got == want, query  # same ids, same order, bit-identical float32 scores
        assert segments.search(query, 5) == want[:5]
    for token in ("词0", "词5", "新词甲", "新词乙", "没有"):
        assert segments.doc_freq(token) == full.doc_freq(token), token
    merged = segments.delta.merged_into(base)  # the merge writes the full build's index
    for query in queries:
        assert merged.search(query, len(full)) == full.search(query, len(full)), query


def test_a_delta_that_removes_every_passage_answers_nothing(tmp_path):
    corpus = random_corpus(20)
    _, segments = segmented(tmp_path, list(range(20)), corpus, [(set(range(20)), [], [])])
    assert len(segments) == 0 and segments.search(["词0"], 5) == [] and segments.doc_freq("词0") == 0
