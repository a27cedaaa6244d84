"""Faults and bad input: killed builds, damaged index files, odd files and odd questions.

Every case ends the same way: the user gets an answer or one clear line (never
a traceback), and nothing already indexed is lost. The small real model
(``tiny_model_dir``) keeps the in-process cases fast; builds that must die by
SIGKILL run in a subprocess.

How a kill lands at a named point: the subprocess runs the real ``qa build``
with one library function wrapped (in the test's own script, not in product
code) so the process SIGKILLs itself when the build reaches that point. That
is deterministic, unlike timing a kill from outside, and the process dies
exactly as it would from ``kill -9``: no cleanup, no ``finally``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa.cli import cli

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "海陵巡特警大队党总支有多少名党员？"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def one_clear_line(result) -> str:
    """The error a user sees: non-zero exit, one line on stderr, no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def doc_ids() -> list[str]:
    result = run("docs", "--json")
    assert result.exit_code == 0, result.output
    return sorted(d["doc_id"] for d in json.loads(result.stdout))


def answers(question: str = QUESTION) -> dict:
    result = run("ask", "--json", question)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def env(tmp_path, seeds_dir, tiny_model_dir, monkeypatch) -> Path:
    """QA_* pointing at a temporary copy of the seeds, an index folder and the tiny model."""
    corpus = tmp_path / "corpus"
    shutil.copytree(seeds_dir, corpus)
    values = {"QA_INDEX_DIR": str(tmp_path / "index"), "QA_SEEDS_DIR": str(corpus),
              "QA_MODEL": str(tiny_model_dir), "QA_BACKEND": "torch", "HF_HUB_OFFLINE": "1"}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return tmp_path


@pytest.fixture
def built(env) -> Path:
    result = run("build")
    assert result.exit_code == 0, result.output
    return env


# -- builds killed with SIGKILL -----------------------------------------------------
KILL_AT = {
    # during embedding: the encoder has started on the changed documents
    "embedding": ("qa.embed", "SentenceEncoder", "encode_passages"),
    # during the index write of an incremental build (a delta): the base is linked, the BM25 delta not written
    "index-write": ("qa.index.keyword", "KeywordDelta", "save"),
    # the same in a build that merges the delta into a new base: vectors.faiss is written, the BM25 files are not
    "merge-write": ("qa.index.keyword", "KeywordIndex", "save"),
    # during the store commit: the snapshot is complete, the store transaction is not committed
    "store-commit": ("qa.index.store", "Store", "commit"),
    # after the store commit, before CURRENT names the new snapshot
    "switch": ("qa.index.durable", None, "replace_current"),
}

KILLER = """
import importlib, os, signal, sys
module, owner, name = sys.argv[1:4]
target = importlib.import_module(module)
holder = getattr(target, owner) if owner != "-" else target
original = getattr(holder, name)
calls = []
def die(*args, **kwargs):
    if name == "commit" and not args[0]._con.in_transaction:
        return original(*args, **kwargs)  # the build's own store only: it holds a transaction
    calls.append(name)
    if len(calls) < int(os.environ.get("KILL_ON_CALL", "1")):
        return original(*args, **kwargs)
    print("KILLING", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(holder, name, die)
if os.environ.get("MERGE_ROWS"):
    import qa.index.local
    qa.index.local.MERGE_ROWS = int(os.environ["MERGE_ROWS"])
if os.environ.get("EMBED_BATCH"):
    import qa.pipeline
    qa.pipeline.EMBED_BATCH = int(os.environ["EMBED_BATCH"])
from qa.cli import main
main(sys.argv[4:])
"""


def killed_build(point: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``KILL_ON_CALL=n``: die at the n-th call instead of the first; ``EMBED_BATCH``: passages per cache commit."""
    module, owner, name = KILL_AT[point]
    cmd = [sys.executable, "-c", KILLER, module, owner or "-", name, "build", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}, cwd=ROOT)


def ask_subprocess() -> dict:
    result = subprocess.run([sys.executable, "-m", "qa", "ask", "--json", QUESTION], capture_output=True,
                            text=True, timeout=300, env=dict(os.environ), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_AT))
def test_build_killed_at_any_point_leaves_the_previous_index_answering(built, point):
    before = doc_ids()
    index_dir = Path(os.environ["QA_INDEX_DIR"])
    current = (index_dir / "CURRENT").read_text()
    corpus = Path(os.environ["QA_SEEDS_DIR"])
    changed = sorted(corpus.iterdir())[0]
    changed.write_text(
        changed.read_text(encoding="utf-8") + "\n\n本段为新增内容，说明构建被中断后的恢复。\n", encoding="utf-8"
    )
    (corpus / "new.txt").write_text("新增文章\n\n交警大队开展夜间巡逻，守护群众平安出行。", encoding="utf-8")

    died = killed_build(point, **({"MERGE_ROWS": "0"} if point == "merge-write" else {}))
    assert died.returncode == -signal.SIGKILL, (died.returncode, died.stdout, died.stderr)
    assert "KILLING" in died.stdout
    assert (index_dir / "CURRENT").read_text() == current  # the switch never happened

    data = ask_subprocess()  # a fresh process reads the previous index
    assert data["citations"] and not data["abstained"]
    assert doc_ids() == before

    again = run("build")  # the next build completes: removes the leftovers, takes the lock
    assert again.exit_code == 0, again.output
    assert "1 added, 1 updated" in again.stdout
    assert len(doc_ids()) == len(before) + 1
    assert answers()["citations"]
    snapshots = sorted(p.name for p in (index_dir / "snapshots").iterdir())
    assert len(snapshots) <= 2, snapshots  # the dead build's partial snapshot was collected


def cached_hashes(index_dir: Path) -> set[bytes]:
    import sqlite3

    con = sqlite3.connect(index_dir / "cache.sqlite")
    try:
        return {bytes(h) for (h,) in con.execute("SELECT hash FROM vectors")}
    finally:
        con.close()


@pytest.mark.slow
def test_a_build_killed_mid_embedding_resumes_without_encoding_any_passage_twice(env):
    import hashlib

    from qa.config import Settings
    from qa.embed import load_encoder
    from qa.pipeline import Bot
    from test_pipeline import Counting

    index_dir = Path(os.environ["QA_INDEX_DIR"])
    died = killed_build("embedding", KILL_ON_CALL="4", EMBED_BATCH="8")  # dies as it starts the 4th batch
    assert died.returncode == -signal.SIGKILL, (died.returncode, died.stdout, died.stderr)
    assert "KILLING" in died.stdout and not (index_dir / "CURRENT").exists()
    done = cached_hashes(index_dir)
    assert len(done) == 3 * 8  # every finished batch reached the cache, committed

    settings = Settings.load()
    bot = Bot(settings, encoder=Counting(load_encoder(settings)))
    report = bot.build()  # the restart
    encoded = {hashlib.sha256(t.encode("utf-8")).digest() for t in bot.encoder.passages}
    assert not encoded & done  # none of the passages the killed build encoded is encoded again
    assert report.embedded == len(bot.encoder.passages) == len(encoded) == report.passages - len(done) > 0
    assert cached_hashes(index_dir) == done | encoded
    assert answers()["citations"]


# -- a fault at every step of the commit -----------------------------------------------------
# Every call that writes, syncs, switches or deletes while Builder.commit runs. The injector counts
# their calls and raises at the n-th point (a point is just before or just after a call), for
# n = 1, 2, ... until a build runs through without reaching n: every step is hit, in order.
COMMIT_STEPS = [
    ("qa.index.vectors", "VectorIndex", "save"),  # vectors.faiss
    ("qa.index.keyword", "KeywordIndex", "save"),  # bm25/
    ("qa.index.local", None, "_link"),  # a delta snapshot: a base file linked from the previous snapshot
    ("qa.index.keyword", "KeywordDelta", "save"),  # a delta snapshot: bm25-delta/
    ("qa.index.vectors", "VectorDelta", "save"),  # a delta snapshot: vectors-delta/
    ("qa.index.durable", None, "write_file"),  # the reader pin, manifest.json, CURRENT.tmp (each written and fsynced)
    ("qa.index.durable", None, "fsync"),  # each file and folder of the snapshot; the index folder after the rename
    ("qa.index.store", "Store", "commit"),  # the store's COMMIT of the new generation's rows
    ("os", None, "replace"),  # CURRENT.tmp -> CURRENT: the commit point
    ("qa.index.durable", None, "remove_unpinned"),  # clean-up: an old snapshot
    ("shutil", None, "rmtree"),  # the snapshot folder before it is written; parts of an old snapshot
    ("qa.index.durable", None, "remove_store"),  # clean-up: a store no kept snapshot uses
    ("qa.index.store", "Store", "collect"),  # clean-up: rows no kept snapshot sees
    ("qa.index.store", "Store", "close"),
]


class FaultAt:
    """Raises ``fault`` at the n-th point of the commit sequence and remembers whether CURRENT was renamed."""

    def __init__(self, monkeypatch, n: int, fault: type[BaseException]) -> None:
        import importlib

        import qa.index.local

        self.n, self.fault, self.points, self.fired, self.renamed, self.active = n, fault, 0, None, False, False
        self.seen: set[str] = set()
        for module, owner, name in COMMIT_STEPS:
            holder = importlib.import_module(module)
            holder = getattr(holder, owner) if owner else holder
            monkeypatch.setattr(holder, name, self._wrap(f"{owner or module}.{name}", getattr(holder, name)))
        commit = qa.index.local.LocalWriter.commit

        def counted_commit(builder, manifest):
            self.active = True
            try:
                return commit(builder, manifest)
            finally:
                self.active = False

        monkeypatch.setattr(qa.index.local.LocalWriter, "commit", counted_commit)

    def _wrap(self, label: str, original):
        def step(*args, **kwargs):
            if not self.active:
                return original(*args, **kwargs)
            self.seen.add(label)
            self._point(f"before {label}")
            result = original(*args, **kwargs)
            if label == "os.replace" and str(args[1]).endswith("CURRENT"):
                self.renamed = True
            self._point(f"after {label}")
            return result

        return step

    def _point(self, where: str) -> None:
        self.points += 1
        if self.points == self.n:
            self.fired = where
            raise self.fault(errno.EIO, f"injected at {where}") if self.fault is OSError else self.fault()


def edit(corpus: Path, mark: str) -> Path:
    """Give the build something to commit: one article gains a sentence."""
    target = sorted(corpus.iterdir())[1]
    added = f"\n\n补充说明第{mark}条：巡逻队开展了安全检查。\n"
    target.write_text(target.read_text(encoding="utf-8") + added, encoding="utf-8")
    return target


def assert_answers_from_whole_snapshot(encoder) -> None:
    """A fresh reader opens the index and answers with citations that are true slices of their documents."""
    from qa.config import Settings
    from qa.pipeline import Bot

    bot = Bot(Settings.load(), encoder=encoder)
    result = bot.ask(QUESTION, k=3)
    assert result.hits and not result.abstained
    for hit in result.hits:
        assert bot.document(hit.document.doc_id).text[hit.passage.start : hit.passage.end] == hit.passage.text


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["first", "incremental", "full"])
@pytest.mark.parametrize("fault", [OSError, KeyboardInterrupt])
def test_a_fault_at_any_step_of_the_commit_leaves_an_answering_index(env, monkeypatch, mode, fault):
    from qa.clean import to_document
    from qa.config import Settings
    from qa.embed import load_encoder
    from qa.errors import IndexMissing, IndexWriteError
    from qa.index.local import current_version
    from qa.load import read
    from qa.pipeline import Bot

    # what is tested is the order of the steps; what fsync itself buys shows only after a power cut
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    settings = Settings.load()
    encoder = load_encoder(settings)
    corpus, index_dir = settings.seeds_dir, settings.index_dir
    fired: list[str] = []
    steps: set[str] = set()
    if mode != "first":
        Bot(settings, encoder=encoder).build()
    for n in range(1, 500):
        if mode == "first":
            shutil.rmtree(index_dir, ignore_errors=True)
        target = edit(corpus, f"{n}")
        before = current_version(index_dir)
        with monkeypatch.context() as patches:
            injector = FaultAt(patches, n, fault)
            try:
                Bot(settings, encoder=encoder).build(full=mode == "full")
            except (IndexWriteError, KeyboardInterrupt) as error:
                assert injector.fired, error  # only the injected fault fails a build
                if isinstance(error, IndexWriteError):
                    assert ("is live" if injector.renamed else "is unchanged") in str(error), (injector.fired, error)
        steps |= injector.seen
        if not injector.fired:
            break  # n is past the last point: this build ran through
        fired.append(injector.fired)
        after = current_version(index_dir)
        # committed exactly when the rename happened, whatever failed after it
        assert after == (f"{int(before or 0) + 1:06d}" if injector.renamed else before), (injector.fired, after)
        if after is None:
            with pytest.raises(IndexMissing):
                Bot(settings, encoder=encoder).index()
        else:
            assert_answers_from_whole_snapshot(encoder)
        report = Bot(settings, encoder=encoder).build(full=mode == "full")  # the next build succeeds
        assert report.passages > 0
        assert_answers_from_whole_snapshot(encoder)
        now = to_document(read(target))  # the index holds the article as it is now
        assert Bot(settings, encoder=encoder).document(now.doc_id).content_hash == now.content_hash
        assert len(list((index_dir / "snapshots").iterdir())) <= 2, injector.fired  # leftovers collected
        assert len(list(index_dir.glob("store-*.sqlite"))) <= 2, injector.fired
    else:
        pytest.fail("the commit sequence never ran through")
    written = ({"qa.index.local._link", "KeywordDelta.save", "VectorDelta.save"} if mode == "incremental"
               else {"VectorIndex.save", "KeywordIndex.save"})  # seeds' edits go into a delta; the others rewrite
    assert steps >= {"os.replace", "qa.index.durable.fsync", "Store.commit", "qa.index.durable.write_file",
                     "Store.collect"} | written
    assert not steps & ({"VectorIndex.save", "KeywordIndex.save"} if mode == "incremental" else {"VectorDelta.save"})
    assert "after os.replace" in fired and "before qa.index.durable.fsync" in fired
    assert len(fired) == n - 1 >= 40, fired
    print(f"\n{mode} build, {fault.__name__}: {len(fired)} fault points, each followed by an answer and a build")


# -- damaged index files ------------------------------------------------------------------
def snapshot(index_dir: Path) -> Path:
    return index_dir / "snapshots" / (index_dir / "CURRENT").read_text().strip()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scribble(path: Path) -> None:
    """Same size, garbled header: only the content is wrong."""
    data = bytearray(path.read_bytes())
    data[:64] = b"\x13" * min(64, len(data))
    path.write_bytes(bytes(data))


def store_file(index_dir: Path) -> Path:
    return index_dir / json.loads((snapshot(index_dir) / "manifest.json").read_text())["store"]


DAMAGE = {
    "vectors truncated": (lambda d: snapshot(d) / "vectors.faiss", truncate),
    "vectors garbled": (lambda d: snapshot(d) / "vectors.faiss", scribble),
    "store truncated": (store_file, truncate),
    "store garbled": (store_file, scribble),
    "manifest truncated": (lambda d: snapshot(d) / "manifest.json", truncate),
    "manifest missing": (lambda d: snapshot(d) / "manifest.json", lambda p: p.unlink()),
    "bm25 scores truncated": (lambda d: snapshot(d) / "bm25" / "data.csc.index.npy", truncate),
    "bm25 vocabulary garbled": (lambda d: snapshot(d) / "bm25" / "vocab.index.json", scribble),
    "CURRENT names nothing": (lambda d: d / "CURRENT", lambda p: p.write_text("999999\n")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_index_gives_one_clear_line_and_build_full_recovers(built, damage):
    before = doc_ids()
    index_dir = Path(os.environ["QA_INDEX_DIR"])
    locate, harm = DAMAGE[damage]
    path = locate(index_dir)
    assert path.exists(), f"{path} not in the index layout any more: update this test"
    harm(path)
    line = one_clear_line(run("ask", "--json", QUESTION))
    assert "qa build" in line
    rebuilt = run("build", "--full")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert doc_ids() == before
    assert answers()["citations"]


# -- a document that changes while it is built ----------------------------------------------
def test_a_document_changing_during_the_build_is_indexed_whole_and_caught_up_next_time(built, monkeypatch):
    import qa.load

    corpus = Path(os.environ["QA_SEEDS_DIR"])
    target = sorted(corpus.iterdir())[3]
    original = target.read_text(encoding="utf-8")
    version_a = original + "\n\n第一版补充：巡逻队共有十二名队员。\n"
    version_b = "修改后的标题\n\n第二版正文：巡逻队扩编到二十名队员，并新增了夜间岗位。\n" + original
    target.write_text(version_a, encoding="utf-8")
    real_read = qa.load.read

    def read_then_change(path, *args, **kwargs):
        raw = real_read(path, *args, **kwargs)
        if Path(path).resolve() == target.resolve():
            target.write_text(version_b, encoding="utf-8")  # the file changes after it was read
        return raw

    monkeypatch.setattr(qa.load, "read", read_then_change)
    assert run("build").exit_code == 0
    monkeypatch.setattr(qa.load, "read", real_read)

    from qa.clean import to_document

    expected_a = to_document(real_read_text(target, version_a))
    docs = {d["doc_id"]: d for d in json.loads(run("docs", "--json").stdout)}
    assert docs[expected_a.doc_id]["content_hash"] == expected_a.content_hash  # version A, whole
    hit = answers("巡逻队共有多少名队员？")
    assert hit["citations"]
    for c in hit["citations"]:
        assert "二十名" not in c["text"] or "十二名" not in c["text"]  # never both versions in one passage

    again = run("build")
    assert again.exit_code == 0 and "1 updated" in again.stdout, again.output
    expected_b = to_document(real_read_text(target, version_b))
    docs = {d["doc_id"]: d for d in json.loads(run("docs", "--json").stdout)}
    assert docs[expected_b.doc_id]["content_hash"] == expected_b.content_hash


def real_read_text(path: Path, content: str):
    """What ``load.read`` returns for ``path`` holding ``content``."""
    import qa.load

    saved = path.read_text(encoding="utf-8")
    path.write_text(content, encoding="utf-8")
    try:
        return qa.load.read(path)
    finally:
        path.write_text(saved, encoding="utf-8")


# -- odd files ------------------------------------------------------------------------------
def test_odd_files_load_or_are_skipped_with_a_reason_and_nothing_is_lost(built, tmp_path):
    before = doc_ids()
    odd = tmp_path / "odd"
    odd.mkdir()
    seed_text = sorted(Path(os.environ["QA_SEEDS_DIR"]).iterdir())[0].read_text(encoding="utf-8")[
        400:
    ]  # body, no site furniture
    (odd / "empty.txt").write_bytes(b"")
    (odd / "blank.md").write_text(" \n\t\n", encoding="utf-8")
    (odd / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (odd / "fake.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2048))
    (odd / "fake.docx").write_bytes(os.urandom(4096))
    (odd / "gbk.txt").write_bytes(("国标编码的文章\n\n" + seed_text[:800]).encode("gbk", errors="ignore"))
    (odd / "mojibake.txt").write_bytes(b"\xff\xfe\xfa" * 3 + b"\x81\x30" * 500)
    (odd / "with space 名字.txt").write_text("空格与中文名\n\n" + seed_text[:400], encoding="utf-8")
    (odd / "-leading-dash.txt").write_text("短横线开头\n\n" + seed_text[400:800], encoding="utf-8")
    (odd / ("长" * 80 + ".txt")).write_text("很长的文件名\n\n" + seed_text[800:1200], encoding="utf-8")
    result = run("build", "--add", str(odd))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    for name in ("empty.txt", "blank.md", "binary.txt", "fake.pdf", "fake.docx", "mojibake.txt"):
        assert f"Skipped {odd / name}: {name}:" in result.stdout, (name, result.stdout)
    assert "mojibake.txt: the text encoding could not be recognised" in result.stdout
    added = set(doc_ids()) - set(before)
    titles = {d["title"] for d in json.loads(run("docs", "--json").stdout)}
    assert {"国标编码的文章", "空格与中文名", "短横线开头", "很长的文件名"} <= titles
    assert len(added) == 4
    dash = run("build", "--add", "--", str(odd / "-leading-dash.txt"))  # a name that looks like a flag
    assert dash.exit_code == 0 and "1 unchanged" in dash.stdout, dash.output
    assert set(before) <= set(doc_ids())


@pytest.mark.slow
def test_a_ten_megabyte_file_loads_or_is_refused_in_bounded_time(built, tmp_path):
    import time

    seed_text = "".join(p.read_text(encoding="utf-8") for p in sorted(Path(os.environ["QA_SEEDS_DIR"]).iterdir()))
    body = (seed_text * (10 * 2**20 // len(seed_text.encode("utf-8")) + 1)).encode("utf-8")[: 10 * 2**20]
    huge = tmp_path / "huge.txt"
    huge.write_bytes("超大文件\n\n".encode("utf-8") + body.decode("utf-8", errors="ignore").encode("utf-8"))
    start = time.perf_counter()
    result = run("build", "--add", str(huge))
    elapsed = time.perf_counter() - start
    print(f"\n10 MB file: exit {result.exit_code} in {elapsed:.0f} s: {result.stdout.strip()[:200]}")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert elapsed < 600
    assert "1 added" in result.stdout  # no size cap for qa build: it loads, it just takes a while
    assert answers()["citations"]


def test_upload_names_cannot_escape_the_uploads_folder():
    from qa.load import SUPPORTED
    from qa.web.admin import safe_name

    for name in ("../x.txt", "../../etc/passwd.txt", "..\\..\\evil.txt", "/abs/path.md", "C:\\Windows\\x.txt",
                 "....//....//x.txt", "%2e%2e%2fx.txt", "./.hidden.txt", "a/../../b.html", "\u202etxt.exe.txt"):
        safe = safe_name(name, SUPPORTED)
        assert "/" not in safe and "\\" not in safe and not safe.startswith("."), (name, safe)
        assert Path(safe).suffix in SUPPORTED
    from qa.errors import UsageError

    for name in ("../../etc/passwd", "x.exe", "..", ""):
        with pytest.raises(UsageError):
            safe_name(name, SUPPORTED)


def test_a_missing_or_escaping_path_is_one_clear_line(built):
    result = run("build", "--add", "../no/such/../x.txt")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "does not exist" in result.stderr


# -- odd questions ------------------------------------------------------------------------------
ODD_QUESTIONS = {
    "empty": "",
    "whitespace": " \t\u3000 ",
    "10,000 characters": "交警大队党建工作" * 1250,
    "emoji only": "😀🚓👮‍♀️🎉",
    "English": "What is the party-building brand of the Mengyin traffic police brigade?",
    "punctuation only": "？？？！！。",
    "control characters": "交警\x00\x1b[31m大队\u200b？",
}


# What each odd question must get. With the tiny test model every cosine lies far below
# retrieve.MIN_DENSE, so a question whose words the collection lacks, or that has no
# words at all, abstains; one made of the collection's own words is answered.
ODD_OUTCOMES = {
    "empty": "error",
    "whitespace": "error",
    "10,000 characters": "answered",  # cut to MAX_QUESTION_CHARS, all of it collection words
    "emoji only": "abstained",  # no words: the dense score decides
    "English": "abstained",  # words, none of them in the collection
    "punctuation only": "abstained",
    "control characters": "answered",  # the codes are stripped on the way in: 交警大队 is left
}


@pytest.mark.parametrize("kind", list(ODD_QUESTIONS))
def test_odd_questions_get_an_answer_or_one_clear_line(built, kind):
    before = doc_ids()
    question = ODD_QUESTIONS[kind]
    result = run("ask", "--json", question)
    if ODD_OUTCOMES[kind] == "error":
        assert "question is empty" in one_clear_line(result)
    else:
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["abstained"] is (ODD_OUTCOMES[kind] == "abstained"), data["signals"]
        assert data["citations"]  # answered, or shown as possibly related
        assert bool(data["lead"]) is not data["abstained"]
    assert doc_ids() == before


def test_odd_questions_on_standard_input_each_get_one_line(built):
    questions = [q for q in ODD_QUESTIONS.values() if "\n" not in q and q.strip()] + [QUESTION]
    result = run("ask", "--json", "-", input="\n".join(questions) + "\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(questions)
    assert all("error" in r or isinstance(r["abstained"], bool) for r in rows)
    assert rows[-1]["citations"] and not rows[-1]["abstained"]
