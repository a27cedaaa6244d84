"""Fusion, overlap merging and the abstention signals measured on passages, on hand-made hits."""

import pytest

from qa import retrieve
from qa.types import Document, Hit, Passage

TEXT = "第一句。第二句。第三句。第四句。"
DOC = Document(doc_id="d", path="/x/d.txt", title="标题", text=TEXT, content_hash="h")


@pytest.fixture(autouse=True)
def _short_citations(monkeypatch):
    """The sentences here are 4 characters; real remainders under MIN_CITATION are dropped."""
    monkeypatch.setattr(retrieve, "MIN_CITATION", 2)


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


def test_overlapping_passages_are_trimmed_not_fused():
    merged = retrieve.merge_overlaps([_hit(4, 12, 0.9, 1), _hit(0, 8, 0.5, 0), _hit(12, 16, 0.3, 2)])
    assert [(h.passage.start, h.passage.end) for h in merged] == [(4, 12), (0, 4), (12, 16)]
    for hit in merged:
        assert TEXT[hit.passage.start : hit.passage.end] == hit.passage.text
    texts = "".join(h.passage.text for h in merged)
    assert texts.count("第二句") == 1  # the shared sentence is shown once, in the better hit
    assert [h.score for h in merged] == [0.9, 0.5, 0.3]  # each keeps its own place and score


def test_a_chain_of_neighbours_never_grows_into_the_article():
    """The old transitive merge made (0,4)+(8,16)+(2,10) one citation of the whole text."""
    merged = retrieve.merge_overlaps([_hit(0, 4, 0.9, 0), _hit(8, 16, 0.8, 2), _hit(2, 10, 0.7, 1)])
    assert [(h.passage.start, h.passage.end) for h in merged] == [(0, 4), (8, 16), (4, 8)]
    assert max(len(h.passage.text) for h in merged) <= 8


def test_neighbours_join_only_within_the_limit():
    both = [_hit(0, 8, 0.9, 0), _hit(4, 12, 0.8, 1)]  # union 12 characters, shared 4
    assert [(h.passage.start, h.passage.end) for h in retrieve.merge_overlaps(both, join_limit=8)] == [(0, 12)]
    assert [(h.passage.start, h.passage.end) for h in retrieve.merge_overlaps(both, join_limit=7)] == [(0, 8), (8, 12)]


def test_a_hit_inside_a_better_one_is_dropped(monkeypatch):
    assert len(retrieve.merge_overlaps([_hit(0, 12, 0.9), _hit(4, 8, 0.5)])) == 1
    monkeypatch.setattr(retrieve, "MIN_CITATION", 5)
    assert len(retrieve.merge_overlaps([_hit(0, 8, 0.9), _hit(4, 12, 0.5)])) == 1  # a 4-character remainder


def test_disjoint_passages_stay_apart():
    merged = retrieve.merge_overlaps([_hit(0, 4, 0.9), _hit(8, 12, 0.5)])
    assert len(merged) == 2


def test_coverage_weights_rare_words_more():
    weights = retrieve.idf_weights(["北京", "交警"], {"北京": 0, "交警": 40}.get, 50)
    assert weights["北京"] > weights["交警"]
    assert retrieve.coverage(["北京", "交警"], weights, ["交警大队"]) < 0.5
    assert retrieve.coverage(["北京", "交警"], weights, ["北京交警"]) == 1.0


def test_coverage_without_words_is_none():
    assert retrieve.coverage([], {}, ["任何文字"]) is None


def test_a_mis_cut_name_gets_partial_credit():
    weights = {"魏舒史": 1.0}
    assert retrieve.coverage(["魏舒史"], weights, ["魏舒,字阳元。史称其……"]) == 0.5  # 魏舒 found, 舒史 not
    assert retrieve.coverage(["北京市"], {"北京市": 1.0}, ["南京的交警"]) == 0.0
    assert retrieve.coverage(["password"], {"password": 1.0}, ["http://pass.sw/ordinary"]) == 0.0


def test_a_name_is_missing_only_when_no_word_and_no_top_article_holds_it():
    freq = {"迪庆": 3, "上海": 0}.get
    assert retrieve.missing_names(["上海市浦东新区"], lambda w: freq(w, 0), ["迪庆州交警"]) == ["上海市浦东新区"]
    assert retrieve.missing_names(["迪庆州"], lambda w: freq(w, 0), [""]) == []  # its proper part is indexed
    assert retrieve.missing_names(["乍都节公园"], lambda w: 0, ["乍都节公园位于曼谷"]) == []  # mis-cut, but there


def test_a_citation_is_recentred_on_the_neighbour_that_holds_the_question():
    # passages (0,12) and (8,16) share 第三句; their union (16) exceeds the limit 8 + 4 shared
    hits = [_hit(0, 12, 0.9, 0), _hit(8, 16, 0.8, 1)]
    merged = retrieve.merge_overlaps(hits, join_limit=8, weights={"第四": 1.0})
    assert "第四句" in merged[0].passage.text and len(merged[0].passage.text) <= 8 + 4
    assert merged[0].score == 0.9  # the better hit keeps its place
    assert "第四句" not in "".join(h.passage.text for h in merged[1:])  # shown once
    plain = retrieve.merge_overlaps(hits, join_limit=8)
    assert plain[0].passage.text == TEXT[0:12]  # without the question's words: the passage as ranked


def test_a_recentred_citation_prefers_the_window_that_mentions_the_question_most():
    # both windows hold 航路; the one reaching into the neighbour names it twice (an opening defines its subject)
    text = "八九十。航路甲。乙丙丁。航路航。路航路。"
    doc = Document(doc_id="d", path="/x/d.txt", title="标题", text=text, content_hash="h")
    hits = [Hit(passage=Passage(doc_id="d", ordinal=o, text=text[s:e], start=s, end=e), document=doc, score=sc)
            for o, (s, e, sc) in enumerate([(0, 12, 0.9), (8, 20, 0.8)])]
    merged = retrieve.merge_overlaps(hits, join_limit=8, weights={"航路": 1.0})
    assert merged[0].passage.text == text[4:16]  # of the two mentioning it twice: the one closer to the ranked passage


def test_the_article_view_highlights_exactly_the_cited_span():
    from qa.present.html import render_article

    trimmed = retrieve.merge_overlaps([_hit(4, 12, 0.9, 1), _hit(0, 8, 0.5, 0)])[1]
    html = render_article(DOC, trimmed.passage.start, trimmed.passage.end, [])
    assert f'class="qa-cited">{trimmed.passage.text}</mark>' in html and trimmed.passage.text == "第一句。"


def test_a_short_whole_passage_is_kept_only_a_short_remainder_is_dropped(monkeypatch):
    monkeypatch.setattr(retrieve, "MIN_CITATION", 5)
    assert len(retrieve.merge_overlaps([_hit(0, 4, 0.9, 0)])) == 1  # a one-sentence article
    assert len(retrieve.merge_overlaps([_hit(0, 8, 0.9), _hit(4, 12, 0.5)])) == 1  # its 4-character remainder
