"""The SQLite store: generations, crash leftovers, garbage collection, the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest

from qa.index.store import EmbeddingCache, Store
from qa.types import Document, Passage


def make_doc(doc_id: str, sentences: list[str], title: str = "标题") -> tuple[Document, list[Passage]]:
    text = "".join(sentences)
    passages, pos = [], 0
    for i, s in enumerate(sentences):
        passages.append(Passage(doc_id, i, s, pos, pos + len(s), heading="小节" if i else None))
        pos += len(s)
    doc = Document(doc_id=doc_id, path=f"/docs/{doc_id}.txt", title=title, text=text,
                   content_hash=f"h-{text}", source="来源", date="2024-01-02", url="https://example.org/x")
    return doc, passages


def add(store: Store, doc_id: str, sentences: list[str], gen: int) -> list[int]:
    doc, passages = make_doc(doc_id, sentences)
    vectors = np.arange(len(passages) * 4, dtype=np.float32).reshape(-1, 4)
    return store.add_document(doc, passages, vectors, [list(p.text) for p in passages], gen)


def test_rows_round_trip_with_metadata_and_offsets(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    ids = add(store, "a", ["第一句。", "第二句话。"], gen=1)
    (p0, d0), (p1, d1) = store.passages([ids[1], ids[0]][::-1])
    doc, passages = make_doc("a", ["第一句。", "第二句话。"])
    assert (p0, p1) == tuple(passages) and d0 == doc == d1
    assert d0.text[p1.start : p1.end] == p1.text
    assert store.document("a", 1) == doc
    info = store.documents(1)[0]
    assert (info.doc_id, info.passages, info.source, info.date, info.url) == ("a", 2, "来源", "2024-01-02", doc.url)
    ids_back, vecs = store.vectors(1, 4)
    assert list(ids_back) == ids and vecs[1].tolist() == [4, 5, 6, 7]
    assert [t for _, t in store.tokens(1)] == [list("第一句。"), list("第二句话。")]
    with pytest.raises(KeyError):
        store.passages([12345])


def test_generations_hide_rows_until_their_turn(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    add(store, "a", ["甲。"], gen=1)
    add(store, "b", ["乙。"], gen=1)
    removed = store.remove_document("a", gen=2)
    add(store, "c", ["丙。"], gen=2)
    assert len(removed) == 1
    assert sorted(store.existing(1)) == ["a", "b"]
    assert sorted(store.existing(2)) == ["b", "c"]
    assert store.passage_count(1) == 2 and store.passage_count(2) == 2
    assert store.document("a", 2) is None and store.document("a", 1) is not None


def test_discard_after_undoes_a_dead_build(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    add(store, "a", ["甲。"], gen=1)
    store.remove_document("a", gen=2)
    add(store, "b", ["乙。"], gen=2)
    store.discard_after(1)
    assert sorted(store.existing(2)) == ["a"]
    assert store.passage_count(2) == 1


def test_collect_drops_only_rows_no_kept_generation_sees(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    [old] = add(store, "a", ["旧的。"], gen=1)
    store.remove_document("a", gen=2)
    [new] = add(store, "a", ["新的。"], gen=2)
    store.collect(1)  # generation 1 is still the previous one: keep its rows
    assert store.passages([old])[0][0].text == "旧的。"
    store.collect(2)
    with pytest.raises(KeyError):
        store.passages([old])
    assert store.passages([new])[0][0].text == "新的。"


def test_removing_a_row_added_by_the_same_build_deletes_it(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    [pid] = add(store, "a", ["甲。"], gen=1)
    assert store.remove_document("a", gen=1) == [pid]
    with pytest.raises(KeyError):
        store.passages([pid])


def test_cache_returns_what_was_put_for_the_same_identity_only(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    cache.put("model-a", ["一", "二", "三"], vectors)
    got = cache.get("model-a", ["三", "四", "一"])
    assert np.array_equal(got[0], vectors[2]) and got[1] is None and np.array_equal(got[2], vectors[0])
    assert cache.get("model-b", ["一", "二"]) == [None, None]
    cache.close()
    again = EmbeddingCache(tmp_path)  # persisted
    assert np.array_equal(again.get("model-a", ["二"])[0], vectors[1])


def test_damaged_cache_is_replaced_not_fatal(tmp_path):
    (tmp_path / "cache.sqlite").write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(tmp_path)
    assert cache.get("m", ["x"]) == [None]
    cache.put("m", ["x"], np.ones((1, 2), dtype=np.float32))
    assert cache.get("m", ["x"])[0].tolist() == [1.0, 1.0]


def old_schema() -> str:
    from qa.index.store import SCHEMA

    return SCHEMA.replace("heading TEXT,", "heading TEXT,\n    text_hash TEXT NOT NULL,")


def test_a_store_of_the_previous_version_drops_its_unread_text_hash_and_takes_new_rows(tmp_path):
    """Stores written before kept a sha256 per passage (NOT NULL) that nothing read."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(old_schema())
    con.execute("INSERT INTO documents (doc_id, added, path, title, text, content_hash)"
                " VALUES ('old', 1, '/docs/old.txt', '旧文', '旧文。', 'h')")
    con.execute("INSERT INTO passages (doc_key, ordinal, start, end, text_hash, tokens, vector)"
                " VALUES (1, 0, 0, 3, 'sha', '旧文', x'0000803f')")
    con.commit()
    con.close()
    reader = Store(path, readonly=True)  # readers never selected the column: an old store still reads
    assert reader.passage_count(1) == 1 and reader.passages([1])[0][0].text == "旧文。"
    reader.close()
    store = Store(path)
    columns = [row[1] for row in store._con.execute("PRAGMA table_info(passages)")]
    assert "text_hash" not in columns
    assert len(add(store, "a", ["第一句。", "第二句。"], gen=2)) == 2
    assert store.passage_count(2) == 3 and store.passages([1])[0][0].text == "旧文。"
    store.close()


def test_passages_of_many_documents_are_read_in_order_past_the_document_cache(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    ids = [add(store, f"d{i}", [f"文{i}甲。", f"文{i}乙。"], gen=1) for i in range(300)]
    asked = [ids[i][i % 2] for i in range(299, -1, -3)] + [ids[5][0], ids[5][1]]
    found = store.passages(asked)
    assert [(p.doc_id, p.ordinal) for p, _ in found] == [(f"d{i}", i % 2) for i in range(299, -1, -3)] + [
        ("d5", 0), ("d5", 1)]
    assert all(d.doc_id == p.doc_id and d.text[p.start : p.end] == p.text for p, d in found)
    assert found[-1][1] is found[-2][1]  # one document read once for its two passages
    with pytest.raises(KeyError):
        store.passages([ids[0][0], 10_000])
