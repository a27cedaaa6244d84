"""The Milvus index against a real Milvus: ``milvus-lite server`` over gRPC, and a Milvus Lite file.

No fake client: every test talks to the server the ``milvus-lite`` package
runs (tests/milvus_server.py). Pipeline mechanics use the tiny real model;
the web chat and the two-replica test in tests/test_milvus_app.py use the
bundled model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from milvus_server import free_port
from qa.cli import cli
from qa.config import Settings
from qa.errors import IndexBusy, IndexUnavailable, UsageError
from qa.index import connect
import qa.index.milvus.lock as milvus_lock
import qa.index.milvus.writer as milvus_writer
from qa.index.milvus import MilvusBackend
from qa.index.milvus.schema import PART_BYTES
from qa.pipeline import Bot
from qa.present.json import answer_to_json
from qa.types import Document, Passage

pytestmark = pytest.mark.milvus

QUESTION = "蒙阴交警大队的党建品牌叫什么？"


@pytest.fixture
def settings(milvus_server, tmp_path, tiny_model_dir) -> Settings:
    """A collection of its own per test, on the shared server."""
    return Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir)).with_(
        milvus_uri=milvus_server.uri, milvus_collection=f"t_{uuid.uuid4().hex[:10]}")


def check_citations(answer) -> None:
    assert answer.hits
    for hit in answer.hits:
        assert hit.document.text[hit.passage.start : hit.passage.end] == hit.passage.text


def test_build_answer_and_list_over_grpc(settings, corpus, tiny_encoder):
    bot = Bot(settings, encoder=tiny_encoder)
    report = bot.build([corpus])
    assert len(report.added) == 5 and report.passages > 0
    assert isinstance(bot.indexer.backend, MilvusBackend)
    answer = bot.ask(QUESTION)
    check_citations(answer)
    infos = bot.documents()
    assert len(infos) == 5 and sum(i.passages for i in infos) == report.passages
    loaded = {d.name for d in corpus.iterdir()}
    assert {Path(i.path).name for i in infos} == loaded
    doc = bot.document(infos[0].doc_id)
    assert doc.content_hash == infos[0].content_hash and doc.text
    with pytest.raises(UsageError):
        bot.document("no-such-id")
    assert not list((settings.index_dir).glob("snapshots")), "no folder index beside Milvus"
    again = Bot(settings, encoder=tiny_encoder).build([corpus])
    assert again.embedded == 0 and len(again.unchanged) == 5


def test_keyword_leg_scores_and_doc_freq_equal_the_folder_index(settings, corpus, tiny_encoder, tmp_path):
    """Same tokens, same BM25 formula: the sparse search gives bm25s's scores, per passage."""
    from qa import segment

    Bot(settings, encoder=tiny_encoder).build([corpus])
    local = settings.with_(milvus_uri="", index_dir=tmp_path / "folder")
    Bot(local, encoder=tiny_encoder).build([corpus])
    m, f = connect(settings).open(), connect(local).open()
    assert m.passage_count() == f.passage_count()
    for query in (QUESTION, "滨州开发区交警大队有多少名党员民警？", "流动党建 服务群众"):
        tokens = segment.tokenize(query)
        theirs, ours = f.search_keyword(tokens, 20), m.search_keyword(tokens, 20)
        assert len(ours) == len(theirs) > 0

        def keyed(reader, found):
            return {(p.doc_id, p.ordinal): score for (p, _), (_, score) in zip(reader.passages([i for i, _ in found]),
                                                                                found, strict=True)}

        a, b = keyed(f, theirs), keyed(m, ours)
        top = [key for key, _ in sorted(a.items(), key=lambda kv: -kv[1])[:5]]
        for key in top:
            assert b[key] == pytest.approx(a[key], rel=1e-4)
        for token in tokens:
            assert m.doc_freq(token) == f.doc_freq(token)
        dense_f = f.search_dense(tiny_encoder.encode_queries([query])[0], 5)
        dense_m = m.search_dense(tiny_encoder.encode_queries([query])[0], 5)
        assert [round(s, 4) for _, s in dense_m] == [round(s, 4) for _, s in dense_f]


def test_incremental_update_remove_and_a_document_longer_than_a_field(settings, corpus, tiny_encoder):
    bot = Bot(settings, encoder=tiny_encoder)
    bot.build([corpus])
    line = "段：青石湾社区图书角今天开放，藏书一千二百册。\n\n"
    long_text = "长文测试\n\n" + "".join(f"第{i}{line}" for i in range(4000))
    assert len(long_text.encode("utf-8")) > 3 * PART_BYTES
    path = corpus / "long.txt"
    path.write_text(long_text, encoding="utf-8")
    before = bot.index().version
    report = bot.build([corpus])
    assert len(report.added) == 1 and len(report.unchanged) == 5 and bot.index().version != before
    doc_id = report.added[0]
    stored = bot.document(doc_id)
    from qa.pipeline import load_documents

    (loaded,), _ = load_documents([path])
    assert stored.text == loaded.text and stored.content_hash == loaded.content_hash
    check_citations(bot.ask("青石湾社区图书角藏书多少册？"))

    path.write_text(long_text.replace("一千二百册", "三千册"), encoding="utf-8")
    report = bot.build([corpus])
    assert report.updated == [doc_id]
    assert "三千册" in bot.document(doc_id).text
    count = bot.index().passage_count()
    path.unlink()
    report = bot.build([corpus])
    assert report.removed == [doc_id] and report.passages < count
    assert doc_id not in {i.doc_id for i in bot.documents()}
    bot.remove([bot.documents()[0].doc_id])
    assert len(bot.documents()) == 4


def test_full_rebuild_switches_the_alias_and_an_open_reader_keeps_answering(settings, corpus, tiny_encoder):
    bot = Bot(settings, encoder=tiny_encoder)
    bot.build([corpus])
    backend = bot.indexer.backend
    old = backend.open()
    first = backend.target()
    report = bot.build([corpus], full=True)
    assert report.full_rebuild_reason and report.embedded == 0  # the local cache had every vector
    assert backend.target() != first and bot.index().version != old.version
    qvec = tiny_encoder.encode_queries([QUESTION])[0]
    assert old.search_dense(qvec, 3) and old.passages([i for i, _ in old.search_dense(qvec, 3)])
    bot.build([corpus], full=True)
    assert first not in backend.bases(), "collections older than the previous one are dropped"


KILLED = """
import sys, time
from pathlib import Path
from qa.config import Settings
from qa.embed import load_encoder
from qa.pipeline import Indexer, Encoders
settings = Settings.load(index_dir=sys.argv[1], model=sys.argv[2]).with_(milvus_uri=sys.argv[3],
                                                                         milvus_collection=sys.argv[4])
indexer = Indexer(settings, encoders=Encoders(settings, load_encoder(settings)))
fresh = sys.argv[5] == "fresh"
with indexer.backend.writer(fresh=fresh) as writer:
    docs = [indexer.backend.open().document(d) for d in sorted(writer.existing())] if fresh else []
    from qa.pipeline import load_documents
    loaded, _ = load_documents([Path(sys.argv[6])])
    indexer._add(writer, loaded + docs, None)
    for doc_id in list(writer.existing())[:2]:
        writer.remove_document(doc_id)
    writer.commit(indexer.manifest()) if fresh else None  # a fresh one dies after the commit's inserts
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("fresh", [False, True])
def test_a_killed_build_leaves_the_live_index_answering_and_the_next_build_cleans_up(
        settings, corpus, tiny_encoder, tiny_model_dir, tmp_path, fresh):
    bot = Bot(settings, encoder=tiny_encoder)
    bot.build([corpus])
    version, docs = bot.index().version, [i.doc_id for i in bot.documents()]
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "new.txt").write_text("新文章\n\n青石湾社区图书角开放，由退休教师周明远管理。", encoding="utf-8")
    script = KILLED if not fresh else KILLED.replace("writer.commit(indexer.manifest()) if fresh else None",
                                                     "writer._create_passages(writer.dim)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "index"), str(tiny_model_dir),
                             settings.milvus_uri, settings.milvus_collection, "fresh" if fresh else "inc", str(extra)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(IndexBusy, match="Another build"):
            with bot.indexer.backend.writer():
                pass
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert bot.index().version == version and [i.doc_id for i in bot.documents()] == docs
    check_citations(bot.ask(QUESTION))
    report = bot.build([corpus, extra])  # the dead owner's lock is taken over; its rows are dropped
    assert report.added and len(report.unchanged) == 5
    reader = bot.index()
    assert reader.passage_count() == sum(i.passages for i in bot.documents())
    assert len(reader.documents()) == 6


def test_a_second_build_at_once_is_refused_with_its_owner(settings, corpus, tiny_encoder, monkeypatch):
    Bot(settings, encoder=tiny_encoder).build([corpus])
    # both builds start in the same second of the same process: their lock collections must still differ
    second = int(time.time())
    monkeypatch.setattr(milvus_lock, "time", SimpleNamespace(time=lambda: float(second), monotonic=time.monotonic,
                                                             sleep=time.sleep, strftime=time.strftime))
    backend = connect(settings)
    with backend.writer():
        with pytest.raises(IndexBusy, match=f"process {os.getpid()}"):
            with connect(settings).writer():
                pass
    with connect(settings).writer():  # released
        pass


def test_an_unreachable_server_is_one_line(tmp_path, tiny_model_dir):
    uri = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, QA_INDEX_DIR=str(tmp_path / "index"), QA_MODEL=str(tiny_model_dir), QA_MILVUS_URI=uri)
    result = subprocess.run([sys.executable, "-m", "qa", "ask", QUESTION], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: The Milvus server at {uri} cannot be reached"), lines
    with pytest.raises(IndexUnavailable):
        connect(Settings.load(milvus_uri=uri)).live_version()


def test_cli_builds_into_milvus_and_a_process_with_an_empty_folder_answers(milvus_server, tmp_path, seeds_dir,
                                                                           tiny_model_dir, monkeypatch):
    monkeypatch.setenv("QA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("QA_SEEDS_DIR", str(seeds_dir))
    monkeypatch.setenv("QA_MILVUS_COLLECTION", f"cli_{uuid.uuid4().hex[:8]}")
    runner = CliRunner()
    built = runner.invoke(cli, ["--index-dir", str(tmp_path / "builder"), "build", "--milvus-uri", milvus_server.uri],
                          catch_exceptions=False)
    assert built.exit_code == 0 and "5 added" in built.output
    replica = tmp_path / "replica"
    env = dict(os.environ, QA_INDEX_DIR=str(replica), QA_MILVUS_URI=milvus_server.uri)
    asked = subprocess.run([sys.executable, "-m", "qa", "ask", "--json", QUESTION], capture_output=True, text=True,
                           env=env, timeout=300)
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert data["citations"] and all(c["text"] for c in data["citations"])
    assert not replica.exists() or not any(replica.iterdir()), "the replica wrote nothing locally"
    docs = runner.invoke(cli, ["docs", "--json", "--milvus-uri", milvus_server.uri], env={"QA_INDEX_DIR": str(replica)})
    assert len(json.loads(docs.output)) == 5


def test_a_milvus_lite_file(tmp_path, corpus, tiny_encoder, tiny_model_dir):
    settings = Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir)).with_(
        milvus_uri=str(tmp_path / "qa.db"))
    bot = Bot(settings, encoder=tiny_encoder)
    assert len(bot.build([corpus]).added) == 5
    data = answer_to_json(bot.ask(QUESTION))
    assert data["citations"]
    bot.indexer.backend.client().close()


def test_the_web_chat_says_the_server_is_down_and_recovers(tmp_path, corpus, tiny_encoder, tiny_model_dir):
    from milvus_server import MilvusServer
    from qa.web.chat import UNAVAILABLE, Chat

    server = MilvusServer(tmp_path / "data").start()
    try:
        settings = Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir)).with_(milvus_uri=server.uri)
        bot = Bot(settings, encoder=tiny_encoder)
        bot.build([corpus])
        chat = Chat(bot)
        messages, data, _, panel = chat.reply(QUESTION, [])
        assert data["citations"] and 'id="qa-cited"' in panel
        cite = data["citations"][0]
        assert "qa-cited" in chat.open_article(f"{cite['doc_id']}:{cite['start']}:{cite['end']}")
        server.stop()
        _, data, _, _ = chat.reply(QUESTION, [])
        assert data["error"] == UNAVAILABLE  # visitors read one short line; the server's address goes to the log
        server = MilvusServer(tmp_path / "data", port=server.port).start()
        for _ in range(30):  # pymilvus reconnects with a back-off of a second or two
            _, data, _, _ = chat.reply(QUESTION, [])
            if "error" not in data:
                break
            time.sleep(1)
        assert data.get("citations"), data
    finally:
        server.stop()


def test_sparse_vectors_are_bm25s_weights():
    """The stored weight times the query's IDF is bm25s's score for a one-word query."""
    from qa.index.keyword import KeywordIndex
    from qa.index.milvus.schema import bm25_vector, term_counts, token_id

    docs = [["交警", "党建", "交警"], ["党建", "品牌"], ["群众"]]
    avgdl = sum(map(len, docs)) / len(docs)
    bm = KeywordIndex.build(np.arange(3), docs)
    for word in ("交警", "党建"):
        df = sum(word in d for d in docs)
        idf = np.log(1 + (3 - df + 0.5) / (df + 0.5))
        expected = dict(bm.search([word], 3))
        for i, d in enumerate(docs):
            weight = bm25_vector(*term_counts(d), len(d), avgdl).get(token_id(word), 0.0)
            assert weight * idf == pytest.approx(expected.get(i, 0.0), rel=1e-5)


def test_document_parts_split_between_characters():
    from qa.index.milvus.schema import split_text

    text = "甲乙丙" * 50_000 + "abc"
    parts = split_text(text)
    assert "".join(parts) == text and len(parts) > 1
    assert all(len(p.encode("utf-8")) <= PART_BYTES for p in parts)


def test_passages_out_of_order_ids_come_back_in_the_order_asked(settings, corpus, tiny_encoder):
    Bot(settings, encoder=tiny_encoder).build([corpus])
    reader = connect(settings).open()
    qvec = tiny_encoder.encode_queries([QUESTION])[0]
    ids = [i for i, _ in reader.search_dense(qvec, 6)][::-1]
    got = reader.passages(ids)
    assert len(got) == len(ids)
    assert all(isinstance(p, Passage) and isinstance(d, Document) for p, d in got)
    assert [p for p, _ in got] == [p for p, _ in (reader.passages([i])[0] for i in ids)]


def test_settings_choose_the_index_and_refuse_what_milvus_cannot_take(tmp_path):
    from qa.index.local import LocalBackend

    assert isinstance(connect(Settings.load(index_dir=tmp_path)), LocalBackend)
    assert isinstance(connect(Settings.load(milvus_uri=str(tmp_path / "x.db"))), MilvusBackend)
    with pytest.raises(UsageError, match="QA_MILVUS_URI"):
        Settings.load(milvus_uri="milvus.example.org:19530")
    with pytest.raises(UsageError, match="QA_MILVUS_COLLECTION"):
        Settings.load(milvus_uri="http://127.0.0.1:19530", milvus_collection="qa-docs")


# -- operating a shared server (issue 22) ----------------------------------------------------------
@pytest.fixture
def cli_env(milvus_server, tmp_path, tiny_model_dir, seeds_dir, monkeypatch):
    """The CLI's settings in the environment; each test names its own collection."""
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("QA_SEEDS_DIR", str(seeds_dir))
    monkeypatch.setenv("QA_MILVUS_URI", milvus_server.uri)
    monkeypatch.delenv("QA_MILVUS_DB", raising=False)
    return dict(os.environ)


def collections(settings: Settings) -> list[str]:
    """The collections of this index's name on the server (its pairs, a build's lock)."""
    backend = connect(settings)
    return sorted(c for c in backend.call("list_collections") if c.startswith(settings.milvus_collection + "_"))


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- item 10: a database that does not exist, a URI with a path ---------------------------------
@pytest.mark.parametrize("command", [["ask", QUESTION], ["build"], ["docs"]])
def test_a_database_that_does_not_exist_is_named_and_nothing_is_built(cli_env, monkeypatch, command):
    monkeypatch.setenv("QA_MILVUS_DB", "no_such_db")
    result = CliRunner().invoke(cli, command)
    line = error_line(result)
    assert result.exit_code != 0 and "No index yet" not in result.stderr and "building" not in result.stderr
    assert "database no_such_db" in line and "QA_MILVUS_DB" in line and "create_database" in line, line
    assert "--full" not in line


@pytest.mark.parametrize("path", ["/no_such_db", "/qa/x"])
def test_a_uri_with_a_path_is_refused_before_anything_is_asked_of_the_server(cli_env, milvus_server, path):
    result = CliRunner().invoke(cli, ["ask", "--milvus-uri", milvus_server.uri + path, QUESTION])
    line = error_line(result)
    assert result.exit_code == 2 and "No index yet" not in result.stderr
    assert f"QA_MILVUS_URI {milvus_server.uri + path}" in line and "QA_MILVUS_DB" in line, line
    with pytest.raises(UsageError, match="path"):
        connect(Settings.load(milvus_uri=milvus_server.uri + path))
    connect(Settings.load(milvus_uri=milvus_server.uri + "/"))  # a bare slash is no path


# -- item 11: the previous pair of a full rebuild is dropped once no reader can be on it -----------
def test_the_previous_pair_is_dropped_by_the_first_build_after_the_grace(settings, corpus, tiny_encoder, monkeypatch):
    bot = Bot(settings, encoder=tiny_encoder)
    bot.build([corpus])
    backend = bot.indexer.backend
    first = backend.target()
    old = backend.open()
    bot.build([corpus], full=True)
    live = backend.target()
    assert live != first
    (corpus / "new.txt").write_text("新文章\n\n青石湾社区图书角开放，由退休教师周明远管理。", encoding="utf-8")
    bot.build([corpus])  # within the grace: a question that took the old pair may still be reading it
    qvec = tiny_encoder.encode_queries([QUESTION])[0]
    assert old.passages([i for i, _ in old.search_dense(qvec, 3)])
    assert first is not None and backend.meta(first) in collections(settings)
    monkeypatch.setattr(milvus_writer, "PREVIOUS_GRACE", 0.0, raising=False)
    (corpus / "new.txt").unlink()
    report = bot.build([corpus])  # the first build after the grace drops it
    assert report.removed and backend.target() == live
    assert collections(settings) == sorted([live, backend.meta(live)]), "only the live pair remains"
    assert bot.index().manifest.get("previous_base") is None
    bot.build([corpus], full=True)  # and a later full rebuild keeps its own previous pair again
    assert live in collections(settings)


# -- item 12: https against a plaintext server ----------------------------------------------------
def test_https_against_a_plaintext_server_is_one_line_without_grpc_logs(milvus_server, tmp_path, tiny_model_dir):
    uri = f"https://127.0.0.1:{milvus_server.port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_") or k == "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"}
    env.update(QA_INDEX_DIR=str(tmp_path / "index"), QA_MODEL=str(tiny_model_dir), QA_MILVUS_URI=uri)
    for command in (["docs"], ["ask", QUESTION]):
        result = subprocess.run([sys.executable, "-m", "qa", *command], capture_output=True, text=True, env=env,
                                timeout=120)
        assert result.returncode == 1
        assert error_line(result).startswith(f"Error: The Milvus server at {uri} cannot be reached"), result.stderr


def test_grpc_logging_is_quiet_unless_the_user_set_it():
    probe = "import os, qa.index.milvus.client; print(os.environ.get('GRPC_VERBOSITY'))"
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    quiet = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert quiet.stdout.strip() == "NONE", quiet.stderr
    chosen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env=dict(env, GRPC_VERBOSITY="DEBUG"))
    assert chosen.stdout.strip() == "DEBUG", chosen.stderr


# -- item 13: no implicit build on a shared server -----------------------------------------------
def test_ask_on_a_mistyped_collection_names_the_indexes_and_builds_nothing(settings, cli_env, corpus, tiny_encoder,
                                                                           monkeypatch):
    Bot(settings, encoder=tiny_encoder).build([corpus])
    mistyped = settings.milvus_collection + "x"
    monkeypatch.setenv("QA_MILVUS_COLLECTION", mistyped)
    for command in (["ask", QUESTION], ["eval", "eval/questions.jsonl"]):
        result = CliRunner().invoke(cli, command)
        line = error_line(result)
        assert result.exit_code == 1 and "building" not in result.stderr
        assert f"No index named {mistyped}" in line and settings.milvus_collection in line and "qa build" in line, line
    assert collections(settings.with_(milvus_collection=mistyped)) == []
    assert not any(c.startswith(mistyped) for c in connect(settings).call("list_collections"))


def test_serve_on_a_collection_that_is_not_there_exits_without_building(milvus_server, tmp_path, tiny_model_dir,
                                                                         seeds_dir):
    name = f"t_{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, QA_INDEX_DIR=str(tmp_path / "index"), QA_MODEL=str(tiny_model_dir),
               QA_SEEDS_DIR=str(seeds_dir), QA_MILVUS_URI=milvus_server.uri, QA_MILVUS_COLLECTION=name,
               QA_PORT=str(free_port()), GRADIO_ANALYTICS_ENABLED="False")
    try:
        result = subprocess.run([sys.executable, "-m", "qa", "serve"], capture_output=True, text=True, env=env,
                                timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("qa serve built the seeds and started serving them")
    assert result.returncode == 1 and "building" not in result.stderr
    assert f"No index named {name}" in result.stderr.strip().splitlines()[-1]
    collections = connect(Settings.load(milvus_uri=milvus_server.uri)).call("list_collections")
    assert not any(c.startswith(name) for c in collections)
