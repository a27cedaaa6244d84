"""What the question is about (qa/subject.py): its distinctive terms, and whether an article mentions them."""

from qa import subject
from qa.types import Document, Hit, Passage

TOTAL = 400  # passages in a pretend collection


def _df(common: dict[str, int] | None = None):
    """A collection where only the words in ``common`` occur, that often."""
    common = common or {}
    return lambda word: common.get(word, 0)


def test_titles_quotes_latin_names_and_numbers_are_terms_by_form():
    terms = subject.terms("《鳄鱼泪》和“硬枝黄蝉”在2001年与JAXR有什么关系？", _df(), TOTAL)
    assert {"鳄鱼泪", "硬枝黄蝉", "2001", "jaxr"} <= set(terms)


def test_a_latin_word_inside_a_title_is_not_counted_twice():
    assert list(subject.terms("《Real World》什么时候发行？", _df({"发行": 50}), TOTAL)) == ["real world"]


def test_rare_words_are_terms_and_words_common_in_the_collection_are_not():
    terms = subject.terms("猴面包树的果实有多长？", _df({"果实": 40}), TOTAL)
    assert "猴面包树" in terms and "果实" not in terms


def test_question_words_and_pointing_words_are_no_subject():
    assert subject.terms("此鱼分布在哪些地区？", _df({"分布": 30, "地区": 30}), TOTAL) == {}
    terms = subject.terms("香港的第一条铁路是哪条铁路？", _df({"香港": 30, "铁路": 30, "第一条": 30}), TOTAL)
    assert not any("哪" in t for t in terms)


def test_a_name_jieba_cuts_into_single_characters_is_one_term():
    assert "萱侬律" in subject.terms("萱侬律什么时候开放？", _df({"开放": 30}), TOTAL)


def test_a_function_character_glued_to_an_unknown_name_is_dropped():
    terms = subject.terms("王法慧是谁的女儿？", _df({"女儿": 30}), TOTAL)
    assert all(not t.endswith("是") for t in terms)
    assert subject.mentioned(terms, "王法慧，东晋孝武帝的皇后，王蕴之女。") == 1.0


def test_rarer_terms_weigh_more():
    terms = subject.terms("2008年的软枝黄蝉", _df({"2008": 8}), TOTAL)
    assert terms["软枝黄蝉"] > terms["2008"]


def test_mentioned_is_the_weighted_share_found_in_the_article():
    weights = {"张永海": 3.0, "2001": 1.0}
    assert subject.mentioned(weights, "于海，2001年加盟上海申花。") == 0.25
    assert subject.mentioned(weights, "张永海 2001年起效力于深圳队") == 1.0
    assert subject.mentioned({}, "任何文章") is None
    assert subject.missing(weights, "于海，2001年加盟上海申花。") == ["张永海"]


def test_matching_ignores_case_and_width():
    assert subject.mentioned({"jaxr": 1.0}, "ＪＡＸＲ是一个API") == 1.0


def test_best_takes_the_article_that_mentions_most():
    weights = {"软枝黄蝉": 2.0, "花期": 1.0}
    assert subject.best(weights, ["黄蝉是夹竹桃科植物。", "软枝黄蝉原产于巴西。"]) == 2 / 3
    assert subject.best({}, ["x"]) is None
    assert subject.best(weights, []) == 0.0


def test_a_name_the_question_marks_by_form_weighs_more_than_a_rare_word():
    terms = subject.terms("电视剧《鳄鱼泪》的播出时间", _df({"电视剧": 30, "时间": 40}), TOTAL)
    assert terms["鳄鱼泪"] == subject.NAMED_WEIGHT * terms["播出"]


def test_a_long_chinese_term_earns_the_share_of_its_character_pairs():
    assert subject.mentioned({"重要性": 1.0}, "景栋的地理位置十分重要。") == 0.5
    assert subject.mentioned({"张永海": 1.0}, "于海，2001年加盟上海申花。") == 0.0
    assert subject.mentioned({"炮身": 1.0}, "砲身长两米") == 0.0  # two characters: whole or nothing


def test_an_a_not_a_question_form_is_no_subject():
    terms = subject.terms("代码需不需要修改？", _df({"代码": 30, "修改": 30}), TOTAL)
    assert not any("不" in t for t in terms)


def test_focus_is_what_the_question_asks_beyond_the_article_subject():
    assert subject.focus("蓍的叶子有什么特点？", "蓍") == frozenset("叶子特点")
    assert subject.focus("谁在哪一年创立了它？") == frozenset("年创立")


def _hit(title: str, text: str, score: float) -> Hit:
    doc = Document(doc_id=title, path=f"/x/{title}.txt", title=title, text=text, content_hash=title)
    return Hit(passage=Passage(doc_id=title, ordinal=0, text=text, start=0, end=len(text)), document=doc, score=score)


def test_the_article_that_names_the_subject_is_cited_first():
    hits = [_hit("黄蝉", "黄蝉原产巴西。", 1.0), _hit("软枝黄蝉", "软枝黄蝉的花为黄色。", 0.9)]
    hits.append(_hit("其他", "无关。", 0.5))
    weights = {"软枝黄蝉": 2.0, "花期": 1.0}
    assert [h.document.title for h in subject.about_first(weights, hits)] == ["软枝黄蝉", "黄蝉", "其他"]
    assert subject.about_first({}, hits) == hits
    alike = {"黄蝉": 1.0}  # both articles name it: the ranking stands
    assert subject.about_first(alike, hits) == hits


def test_folded_articles_are_kept_within_their_bound_and_never_stale(monkeypatch):
    monkeypatch.setattr(subject, "NORMALISED_CHARS", 400)
    monkeypatch.setattr(subject, "_normalised", type(subject._normalised)())
    monkeypatch.setattr(subject, "_normalised_chars", 0)
    weights = {"jaxr": 1.0}
    assert subject.mentioned(weights, "ＪＡＸＲ的标准" + "。" * 40) == 1.0  # width and case folded
    assert subject.mentioned(weights, "JAX的标准" + "。" * 40) == 0.0  # another article: its own form
    for i in range(20):
        subject.mentioned(weights, f"第{i}篇" + "字" * 50)
    assert subject._normalised_chars <= 400 and len(subject._normalised) < 20  # the oldest were let go
    assert subject.mentioned(weights, "ＪＡＸＲ的标准" + "。" * 40) == 1.0
    assert subject.mentioned(weights, "长" * 200) == 0.0  # over a quarter of the bound: folded, not kept
    assert "长" * 200 not in subject._normalised
