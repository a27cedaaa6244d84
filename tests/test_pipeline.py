"""Builds and questions through Bot, with a small real model for speed.

Incremental behaviour is proved by counting the texts that reach the
encoder: a real encoder wrapped so every call is recorded.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import qa.load

from qa.config import Settings
from qa.embed import load_encoder
from qa.errors import IndexBusy, IndexMissing, UsageError
from qa.index.local import LocalWriter
from qa.pipeline import Bot
from qa.present.json import answer_to_json
from qa.present.report import summary


class Counting:
    """Delegates to a real encoder and records how many passages it encoded."""

    def __init__(self, encoder):
        self._encoder = encoder
        self.passages: list[str] = []

    def __getattr__(self, name):
        return getattr(self._encoder, name)

    def encode_passages(self, texts, progress=None):
        self.passages.extend(texts)
        return self._encoder.encode_passages(texts, progress=progress)


@pytest.fixture
def make_bot(tmp_path, tiny_model_dir):
    def make(**changes) -> Bot:
        settings = Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir)).with_(**changes)
        return Bot(settings, encoder=Counting(load_encoder(settings)))

    return make


def test_incremental_build_embeds_only_what_changed(make_bot, corpus):
    bot = make_bot()
    first = bot.build([corpus])
    assert len(first.added) == 5 and first.embedded == len(bot.encoder.passages) > 0
    assert first.passages == sum(d.passages for d in bot.documents())

    again = make_bot().build([corpus])
    assert again.embedded == 0 and len(again.unchanged) == 5 and not again.added

    # change one article, delete another, add a new one
    changed = sorted(corpus.iterdir())[1]
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\n\n新增的一段话说明了这次修改的内容。\n", encoding="utf-8"
    )
    deleted = sorted(corpus.iterdir())[2]
    deleted.unlink()
    (corpus / "new.txt").write_text(
        "新文章标题\n\n这是一篇新加入的文章，讲述交警大队开展安全宣传的情况。", encoding="utf-8"
    )
    bot = make_bot()
    third = bot.build([corpus])
    assert len(third.updated) == 1 and len(third.removed) == 1 and len(third.added) == 1
    assert len(third.unchanged) == 3
    # only passages whose text is new reach the encoder: the new article and the changed tail
    assert 0 < third.embedded == len(bot.encoder.passages) < first.embedded / 3
    titles = {d.title for d in bot.documents()}
    assert "新文章标题" in titles and len(titles) == 5


def test_documents_from_elsewhere_survive_a_rescan(make_bot, corpus, tmp_path):
    bot = make_bot()
    bot.build([corpus])
    extra = tmp_path / "extra.txt"
    extra.write_text("另一份材料\n\n这份材料来自另一个文件夹，重建时不能丢失。", encoding="utf-8")
    assert len(bot.build([extra], add_only=True).added) == 1
    report = bot.build([corpus])
    assert not report.removed and len(bot.documents()) == 6


def test_model_or_chunking_change_forces_full_rebuild(make_bot, corpus):
    make_bot().build([corpus])
    bot = make_bot(chunk_size=200, chunk_max=300)
    report = bot.build([corpus])
    assert "chunking" in report.full_rebuild_reason
    assert report.embedded > 0

    other = make_bot(model="")  # the bundled model
    report = other.build([corpus])
    assert "embedding model changed" in report.full_rebuild_reason
    assert other.documents() and report.embedded > 0


def test_remove_and_clear_errors(make_bot, corpus):
    bot = make_bot()
    with pytest.raises(IndexMissing, match="qa build"):
        bot.ask("交警")
    bot.build([corpus])
    doc_id = bot.documents()[0].doc_id
    assert bot.remove([doc_id]).removed == [doc_id]
    assert doc_id not in {d.doc_id for d in bot.documents()}
    with pytest.raises(UsageError, match="qa docs"):
        bot.remove(["no-such-doc"])
    with pytest.raises(UsageError, match="empty"):
        bot.ask("   ")


def test_second_build_is_refused_while_one_runs(make_bot, corpus):
    bot = make_bot()
    bot.build([corpus])
    with LocalWriter(bot.settings.index_dir):
        with pytest.raises(IndexBusy, match="build"):
            bot.build([corpus])
    assert bot.build([corpus]).embedded == 0  # the lock is released afterwards


def test_answer_json_shape_and_citations_are_true_slices(make_bot, corpus):
    bot = make_bot()
    bot.build([corpus])
    result = answer_to_json(bot.ask("海陵巡特警大队党总支有多少名党员？", k=3))
    assert set(result) == {"question", "query", "abstained", "notices", "signals", "encoder", "lead", "citations"}
    assert 1 <= len(result["citations"]) <= 3
    for c in result["citations"]:
        assert set(c) >= {"rank", "doc_id", "title", "source", "date", "url", "path", "text", "start", "end", "score"}
        assert bot.document(c["doc_id"]).text[c["start"] : c["end"]] == c["text"]
    for sentence in result["lead"]:
        assert sentence["text"] in result["citations"][sentence["citation"] - 1]["text"]


def test_follow_up_folds_in_the_previous_question(make_bot, corpus):
    bot = make_bot()
    bot.build([corpus])
    result = bot.ask("那海陵巡特警大队呢？", history=["滨州开发区交警大队有多少名党员民警？"])
    assert result.query == "海陵巡特警大队有多少名党员民警？"


def open_files(path: Path) -> list[str]:
    """This process's open descriptors on ``path`` (and its -wal/-shm files)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue  # closed meanwhile
        if str(target).startswith(str(path)):
            found.append(str(target))
    return found


def test_the_embedding_cache_is_closed_even_when_encoding_fails(make_bot, corpus):
    bot = make_bot()

    def failing(texts, progress=None):
        raise RuntimeError("the encoder failed")

    bot.encoder.encode_passages = failing
    with pytest.raises(RuntimeError) as caught:  # its traceback keeps the build's frames alive
        bot.build([corpus])
    assert caught.value.__traceback__ is not None
    assert not open_files(bot.settings.index_dir / "cache.sqlite")


def test_a_question_in_flight_finishes_on_its_snapshot_while_builds_commit(make_bot, corpus):
    """Candidates are taken, then builds remove every document, rebuild the store and clean up; the
    question still gets its passages (no "Passage N is missing"), from the snapshot it started with."""
    bot = make_bot()
    bot.build([corpus])
    found = bot.asker.candidates("海陵巡特警大队党总支有多少名党员？")
    other = make_bot()
    other.remove([d.doc_id for d in other.documents()])
    other.build([corpus])  # its clean-up drops rows the previous snapshot no longer sees
    other.build([corpus], full=True)  # a new store; the old one is unused but for the question in flight
    result = bot.asker.answer(found, k=3)
    assert result.hits and not result.abstained
    for hit in result.hits:
        assert hit.document.text[hit.passage.start : hit.passage.end] == hit.passage.text
    assert len(bot.ask("海陵巡特警大队党总支有多少名党员？").hits) > 0  # the next question takes the new snapshot


def test_a_question_finishes_on_the_snapshot_it_started_on_while_builds_switch(make_bot, corpus, tmp_path):
    """The web chat answers while an admin rebuilds. The two are interleaved by hand, not by
    threads, so each order that matters happens every run: a question's retrieval runs on one
    snapshot, a build commits (an addition, a removal, a full rebuild into a new store), then
    the question is finished. Its citations must be true slices of the snapshot that answered,
    and the next question must see the new snapshot."""
    bot = make_bot()
    bot.build([corpus])
    builder = make_bot()
    extra = tmp_path / "extra.txt"
    extra.write_text("临时通知\n\n本周末海陵巡特警大队党总支组织党员开展志愿服务活动，地点在城区主要路口。\n",
                     encoding="utf-8")
    added: list[str] = []
    steps = [
        lambda: added.extend(builder.build([extra], add_only=True).added),
        lambda: builder.remove(added),
        lambda: builder.build([corpus], full=True),
        lambda: builder.build([extra], add_only=True),
    ]
    question = "海陵巡特警大队党总支有多少名党员？"
    for step in steps:
        found = bot.asker.candidates(question)
        started_on = found.index.version
        step()
        result = bot.asker.answer(found, k=3)
        assert result.hits, result
        for hit in result.hits:
            doc = found.index.document(hit.document.doc_id)
            assert doc.text[hit.passage.start : hit.passage.end] == hit.passage.text
        assert bot.asker.candidates(question).index.version != started_on  # the next question sees the build
    assert added and any(d.doc_id == added[0] for d in bot.documents())


def test_a_build_leaves_no_embedding_cache_open(make_bot, corpus):
    bot = make_bot()
    bot.build([corpus])
    bot.build([corpus], full=True)
    assert not open_files(bot.settings.index_dir / "cache.sqlite")


def test_a_question_without_words_abstains(make_bot, corpus):
    """Emoji and punctuation give nothing to search for; the dense score alone must not answer them."""
    bot = make_bot()
    bot.build([corpus])
    for question in ("🙂🙂🙂？？", "……！！！", "★☆→←"):
        result = bot.ask(question)
        assert result.abstained and not result.lead, question
        assert result.signals["coverage"] is None


def test_candidates_carry_the_question_cut_once_and_the_answer_is_the_same_without_it(make_bot, corpus):
    """Candidates made elsewhere (without ``words``) are cut on demand, to the same answer."""
    from dataclasses import replace

    from qa import segment

    bot = make_bot()
    bot.build([corpus])
    for question in ("海陵巡特警大队党总支有多少名党员？", "蒙阴交警大队的党建品牌叫什么？", "🙂？"):
        found = bot.asker.candidates(question)
        assert found.words == segment.cut(found.query)
        assert bot.asker.answer(replace(found, words=None)) == bot.asker.answer(found)


def test_an_over_long_question_is_answered_with_a_notice(make_bot, corpus):
    from qa.pipeline import MAX_QUESTION_CHARS

    bot = make_bot()
    bot.build([corpus])
    short = bot.ask("海陵巡特警大队党总支有多少名党员？")
    assert short.notices == []
    long = bot.ask("海陵巡特警大队党总支有多少名党员？" + "请详细说明。" * MAX_QUESTION_CHARS)
    assert len(long.notices) == 1 and str(MAX_QUESTION_CHARS) in long.notices[0]
    assert answer_to_json(long)["notices"] == long.notices


def _age(*paths: Path, seconds: float = 3600) -> None:
    """Date files back, as in a collection that has sat on disk (fresh files are read again: racy stats)."""
    when = time.time() - seconds
    for path in paths:
        os.utime(path, (when, when))


def test_unchanged_rebuild_reads_no_file(make_bot, corpus, monkeypatch):
    """Before: every rebuild read and parsed every file again, even when none had changed."""
    stray = corpus / "stray.txt"  # loads with a notice, which an unread rebuild must still give
    stray.write_bytes(sorted(corpus.iterdir())[0].read_bytes().replace("。".encode(), "。".encode() + b"\xff", 1))
    files = sorted(corpus.iterdir())
    _age(*files)
    first = make_bot().build([corpus])
    assert len(first.added) == 6 and [n.path for n in first.notices] == [str(stray.resolve())]
    reads: list[str] = []
    real = qa.load.read
    monkeypatch.setattr(qa.load, "read", lambda path, *a, **k: reads.append(Path(path).name) or real(path, *a, **k))

    bot = make_bot()
    again = bot.build([corpus])
    assert reads == [] and again.embedded == 0 and len(again.unchanged) == 6 and not (again.added or again.removed)
    assert summary(again).splitlines()[1:] == summary(first).splitlines()[1:]  # the same Loaded line

    touched, edited = files[0], files[1]
    _age(touched, seconds=1800)  # new mtime, same text: read, found unchanged by its hash
    edited.write_text(edited.read_text(encoding="utf-8") + "\n\n补充的一段话。\n", encoding="utf-8")
    _age(edited, seconds=1800)
    third = make_bot().build([corpus])
    assert sorted(reads) == sorted([touched.name, edited.name])
    assert len(third.updated) == 1 and len(third.unchanged) == 5

    reads.clear()
    doc_id = next(d.doc_id for d in bot.documents() if d.path == str(files[2].resolve()))
    bot.remove([doc_id])  # the record now names a hash the index no longer holds: read and added again
    fourth = make_bot().build([corpus])
    assert reads == [files[2].name] and fourth.added == [doc_id]

    reads.clear()
    (bot.settings.index_dir / "files.sqlite").unlink()  # an index without records reads every file once
    assert len(make_bot().build([corpus]).unchanged) == 6 and len(reads) == 6
    reads.clear()
    assert len(make_bot().build([corpus]).unchanged) == 6 and reads == []


def test_a_file_changed_within_the_timestamp_tick_is_read_again(make_bot, corpus, monkeypatch):
    """A file modified moments before a build is not recorded: a second write in the same tick, same size,
    would leave its stat unchanged."""
    monkeypatch.setattr(qa.load.SeenFiles, "RACY_SECONDS", 3600)  # "moments" stretched so a slow machine keeps up
    fresh = sorted(corpus.iterdir())[0]
    _age(*[p for p in corpus.iterdir() if p != fresh], seconds=7200)
    fresh.write_bytes(fresh.read_bytes())  # modified now
    make_bot().build([corpus])
    reads: list[str] = []
    real = qa.load.read
    monkeypatch.setattr(qa.load, "read", lambda path, *a, **k: reads.append(Path(path).name) or real(path, *a, **k))
    make_bot().build([corpus])
    assert reads == [fresh.name]
