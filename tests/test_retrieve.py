"""Fusion, overlap merging and the abstention rule, on hand-made hits."""

from qa import retrieve
from qa.types import Document, Hit, Passage

TEXT = "第一句。第二句。第三句。第四句。"
DOC = Document(doc_id="d", path="/x/d.txt", title="标题", text=TEXT, content_hash="h")


def _hit(start: int, end: int, score: float, ordinal: int = 0) -> Hit:
    passage = Passage(doc_id="d", ordinal=ordinal, text=TEXT[start:end], start=start, end=end)
    return Hit(passage=passage, document=DOC, score=score)


def test_weighted_fusion_min_max_normalises_each_list():
    dense = [(1, 0.90), (2, 0.86), (3, 0.80)]  # e5 cosines: close together
    keyword = [(2, 10.0), (3, 6.0), (4, 2.0)]
    fused = retrieve.fuse_weighted(dense, keyword, weight=0.5)
    assert fused[1] == 0.5  # best dense, absent from BM25
    assert abs(fused[2] - (0.5 * 0.6 + 0.5)) < 1e-9  # 0.86 sits 60% up the dense range
    assert fused[3] == 0.25 and fused[4] == 0.0
    assert max(fused, key=fused.get) == 2
    assert retrieve.fuse_weighted(dense, keyword, weight=1.0)[1] == 1.0  # weight 1: dense alone


def test_rrf_rewards_agreement():
    fused = retrieve.fuse_rrf([(1, 0.9), (2, 0.8)], [(2, 3.0), (3, 2.0)])
    assert max(fused, key=fused.get) == 2


def test_overlapping_passages_merge_into_one_true_slice():
    merged = retrieve.merge_overlaps([_hit(4, 12, 0.9, 1), _hit(0, 8, 0.5, 0), _hit(12, 16, 0.3, 2)])
    assert [(h.passage.start, h.passage.end) for h in merged] == [(0, 12), (12, 16)]  # touching is not overlapping
    for hit in merged:
        assert TEXT[hit.passage.start : hit.passage.end] == hit.passage.text
    texts = "".join(h.passage.text for h in merged)
    assert texts.count("第二句") == 1  # the shared sentence is shown once
    assert merged[0].score == 0.9  # the better score is kept


def test_a_later_hit_bridging_two_earlier_ones_merges_all_three():
    merged = retrieve.merge_overlaps([_hit(0, 4, 0.9, 0), _hit(8, 16, 0.8, 2), _hit(2, 10, 0.7, 1)])
    assert [(h.passage.start, h.passage.end, h.score) for h in merged] == [(0, 16, 0.9)]
    assert merged[0].passage.text == TEXT


def test_disjoint_passages_stay_apart():
    merged = retrieve.merge_overlaps([_hit(0, 4, 0.9), _hit(8, 12, 0.5)])
    assert len(merged) == 2


def test_coverage_weights_rare_words_more():
    weights = retrieve.idf_weights(["北京", "交警"], {"北京": 0, "交警": 40}.get, 50)
    assert weights["北京"] > weights["交警"]
    assert retrieve.coverage(["北京", "交警"], weights, ["交警大队"]) < 0.5
    assert retrieve.coverage(["北京", "交警"], weights, ["北京交警"]) == 1.0


def test_coverage_without_words_defers_to_the_dense_score():
    assert retrieve.coverage([], {}, ["任何文字"]) is None
    assert retrieve.decide(None, retrieve.MIN_DENSE - 0.01)
    assert not retrieve.decide(None, retrieve.MIN_DENSE + 0.01)


def test_a_mis_cut_name_gets_partial_credit():
    weights = {"魏舒史": 1.0}
    assert retrieve.coverage(["魏舒史"], weights, ["魏舒,字阳元。史称其……"]) == 0.5  # 魏舒 found, 舒史 not
    assert retrieve.coverage(["北京市"], {"北京市": 1.0}, ["南京的交警"]) == 0.0
    assert retrieve.coverage(["password"], {"password": 1.0}, ["http://pass.sw/ordinary"]) == 0.0


def test_abstention_thresholds_direction():
    assert retrieve.decide(0.0, 0.99)  # nothing of the question is in the passages
    assert not retrieve.decide(1.0, 0.0)  # everything is: answer even with a weak dense score
    borderline = (retrieve.WEAK_COVERAGE - 0.01, retrieve.MIN_DENSE - 0.01)
    assert retrieve.decide(*borderline)
    assert not retrieve.decide(borderline[0], retrieve.MIN_DENSE + 0.01)
