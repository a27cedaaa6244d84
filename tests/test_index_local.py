"""The on-disk index: updates, reopening, crashes (SIGKILL), the lock, damaged files.

Vectors here are random normalised test data for the vector index, and tokens
are plain character lists: the storage layer does not depend on any model.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from qa.errors import IndexBusy, IndexCorrupt, IndexMissing, QAError, UsageError
from qa.index.local import LocalWriter, current_version, open_index
from qa.types import Document, Passage

DIM = 16
MANIFEST = {"encoder": "test-vectors", "dim": DIM}
ARTICLES = {
    "fruit": ["苹果香蕉很好吃。", "西瓜葡萄也不错。"],
    "trains": ["火车站在城东。", "飞机场在城西。"],
    "police": ["蒙阴交警大队党建品牌。", "情满崮乡平安畅行。"],
}


def article(doc_id: str, sentences: list[str]) -> tuple[Document, list[Passage], np.ndarray, list[list[str]]]:
    text = "".join(sentences)
    passages, pos = [], 0
    for i, s in enumerate(sentences):
        passages.append(Passage(doc_id, i, s, pos, pos + len(s)))
        pos += len(s)
    doc = Document(doc_id=doc_id, path=f"/docs/{doc_id}.txt", title=doc_id, text=text,
                   content_hash=hashlib.sha256(text.encode()).hexdigest())
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    vectors = np.random.default_rng(seed).standard_normal((len(passages), DIM)).astype(np.float32)
    return doc, passages, vectors, [[c for c in s if c != "。"] for s in sentences]


def build(index_dir: Path, docs: dict[str, list[str]], remove: Sequence[str] = (), fresh: bool = False,
          previous=None) -> None:
    with LocalWriter(index_dir, fresh=fresh, previous=previous) as builder:
        for doc_id in remove:
            builder.remove_document(doc_id)
        for doc_id, sentences in docs.items():
            builder.add_document(*article(doc_id, sentences))
        builder.commit(MANIFEST)


def keyword_docs(index, word: str) -> set[str]:
    ids = [pid for pid, _ in index.search_keyword(list(word), 10)]
    return {p.doc_id for p, _ in index.passages(ids)}


def assert_answers(index_dir: Path, present: set[str], absent: set[str]) -> None:
    with open_index(index_dir) as index:
        assert {d.doc_id for d in index.documents()} == present
        for doc_id in present:
            first = ARTICLES.get(doc_id, [""])[0]
            vec = article(doc_id, ARTICLES[doc_id])[2][0] if doc_id in ARTICLES else None
            if vec is not None:
                pid, score = index.search_dense(vec, 1)[0]
                assert index.passages([pid])[0][0].text == first and score > 0.999
        assert not absent & {d.doc_id for d in index.documents()}


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    path = tmp_path / "index"
    build(path, {k: ARTICLES[k] for k in ("fruit", "trains")})
    return path


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(IndexMissing, match="Run: qa build"):
        open_index(tmp_path / "nothing")
    assert current_version(tmp_path / "nothing") is None


def test_add_remove_replace_change_results(index_dir):
    with open_index(index_dir) as index:
        assert keyword_docs(index, "火车") == {"trains"} and index.passage_count() == 4
        assert index.manifest["encoder"] == "test-vectors" and index.manifest["vectors"]["kind"] == "flat"
        assert set(index.manifest["libraries"]) == {"faiss", "bm25s", "numpy"}
    build(index_dir, {"police": ARTICLES["police"]})
    with open_index(index_dir) as index:
        assert keyword_docs(index, "交警") == {"police"} and index.passage_count() == 6
    build(index_dir, {}, remove=("trains",))
    with open_index(index_dir) as index:
        assert keyword_docs(index, "火车") == set() and index.passage_count() == 4
        with pytest.raises(UsageError, match="qa docs"):
            index.document("trains")
    build(index_dir, {"fruit": ["火车里卖苹果。"]})  # replace: same doc_id, new text
    with open_index(index_dir) as index:
        assert keyword_docs(index, "火车") == {"fruit"}
        assert index.document("fruit").text == "火车里卖苹果。"
        assert {d.doc_id: d.passages for d in index.documents()} == {"fruit": 1, "police": 2}
        assert index.doc_freq("苹") == 1


def test_reader_keeps_its_snapshot_while_a_build_commits(index_dir):
    old = open_index(index_dir)
    build(index_dir, {}, remove=("trains",))
    ids = [pid for pid, _ in old.search_keyword(["火"], 5)]
    assert old.passages(ids)[0][0].text == "火车站在城东。"  # previous generation still readable
    assert current_version(index_dir) != old.version
    old.close()


def test_a_reader_keeps_its_passages_across_any_number_of_builds_and_lets_go_on_close(index_dir):
    """A question may hold its snapshot while builds remove its documents, rebuild the store and clean up."""
    old = open_index(index_dir)
    ids = [pid for pid, _ in old.search_keyword(["火"], 5)]
    old_store = index_dir / old.manifest["store"]

    def still_reads() -> None:
        (passage, doc), = old.passages(ids)
        assert passage.text == "火车站在城东。" == doc.text[passage.start : passage.end]
        assert old.document("trains").text.startswith("火车站")

    build(index_dir, {}, remove=("trains",))  # its rows now carry removed = 2
    still_reads()
    build(index_dir, {"police": ARTICLES["police"]})  # clean-up after this one used to drop those rows
    still_reads()
    build(index_dir, {"fruit": ARTICLES["fruit"]}, fresh=True)  # a new store file
    build(index_dir, {}, remove=("police",))  # the old store is needed by no snapshot but the pinned one
    still_reads()
    assert old_store.is_file() and (index_dir / "snapshots" / old.version).is_dir()
    assert_answers(index_dir, {"fruit"}, {"trains", "police"})
    old.close()
    build(index_dir, {"trains": ARTICLES["trains"]})  # the first build after the reader let go tidies up
    assert not old_store.exists() and not (index_dir / "snapshots" / old.version).exists()
    assert len(list((index_dir / "snapshots").iterdir())) == 2 and len(list(index_dir.glob("store-*.sqlite"))) == 1
    assert_answers(index_dir, {"fruit", "trains"}, {"police"})


@pytest.mark.parametrize("fresh", [False, True], ids=["incremental", "fresh store"])
@pytest.mark.parametrize("fault", ["folder fsync fails", "Ctrl-C as the rename returns"])
def test_a_fault_once_current_is_renamed_leaves_the_new_index_live(index_dir, monkeypatch, fault, fresh):
    import qa.index.durable

    if fault == "folder fsync fails":
        real_fsync = qa.index.durable.fsync

        def fsync(path: str) -> None:
            if Path(path) == index_dir:  # the fsync that makes the rename durable
                raise OSError(errno.EIO, "Input/output error")
            real_fsync(path)

        monkeypatch.setattr(qa.index.durable, "fsync", fsync)
    else:
        real_replace = os.replace

        def replace(src, dst) -> None:
            real_replace(src, dst)
            if str(dst).endswith("CURRENT"):
                raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", replace)
    docs = {"fruit": ARTICLES["fruit"], "police": ARTICLES["police"]} if fresh else {"police": ARTICLES["police"]}
    with pytest.raises((OSError, QAError, KeyboardInterrupt)) as caught:
        build(index_dir, docs, remove=() if fresh else ("trains",), fresh=fresh)
    monkeypatch.undo()
    assert_answers(index_dir, {"fruit", "police"}, {"trains"})  # the build is live, whole
    if fault == "folder fsync fails":
        assert isinstance(caught.value, QAError) and "is live" in str(caught.value), caught.value
    build(index_dir, {"trains": ARTICLES["trains"]})  # and the next build succeeds
    assert_answers(index_dir, {"fruit", "police", "trains"}, set())


def test_fresh_build_starts_empty_and_recovers_a_garbled_store(index_dir):
    store = next(index_dir.glob("store-*.sqlite"))
    with open(store, "r+b") as f:
        f.write(b"garbage!" * 64)
    with pytest.raises(IndexCorrupt, match=r"store-.*qa build --full"):
        open_index(index_dir).documents()
    build(index_dir, {"police": ARTICLES["police"]}, fresh=True)
    assert_answers(index_dir, {"police"}, {"fruit", "trains"})


def test_leaving_without_commit_or_on_error_discards(index_dir):
    version = current_version(index_dir)
    with LocalWriter(index_dir) as builder:
        builder.add_document(*article("police", ARTICLES["police"]))
    with pytest.raises(RuntimeError):
        with LocalWriter(index_dir) as builder:
            builder.remove_document("fruit")
            raise RuntimeError("boom")
    assert current_version(index_dir) == version
    assert_answers(index_dir, {"fruit", "trains"}, {"police"})
    assert sorted(p.name for p in (index_dir / "snapshots").iterdir()) == [version]


def test_two_builders_at_once(index_dir):
    with LocalWriter(index_dir):
        with pytest.raises(IndexBusy, match="Another build .* running.*Wait for it"):
            with LocalWriter(index_dir):
                pass
    build(index_dir, {"police": ARTICLES["police"]})  # the lock is released afterwards


def test_builder_in_another_process_holds_the_lock(index_dir):
    code = (f"import sys, time; from qa.index.local import LocalWriter\nwith LocalWriter({str(index_dir)!r}):\n"
            " print('locked', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusy, match=f"process {child.pid}"):
            LocalWriter(index_dir).__enter__()
    finally:
        child.kill()
        child.wait()
    build(index_dir, {"police": ARTICLES["police"]})  # a dead holder's lock is gone with it


KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import numpy as np
import qa.index.durable, qa.index.local, qa.index.vectors
from test_index_local import ARTICLES, MANIFEST, article

point, mode = {point!r}, {mode!r}
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "merge":  # one segment again: the base is rewritten
    qa.index.local.MERGE_ROWS = 0
if point == "mid-write":  # half of vectors.faiss (a merge) or of the delta's vectors is on disk, then the process dies
    owner = qa.index.vectors.VectorIndex if mode == "merge" else qa.index.vectors.VectorDelta
    real_save = owner.save
    def save(self, path):
        real_save(self, path)
        path = path if mode == "merge" else path / "vectors.npy"
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        die()
    owner.save = save
elif point == "before-switch":  # files fsynced and store committed; CURRENT not yet replaced
    qa.index.durable.replace_current = die
elif point == "after-switch":  # CURRENT replaced; garbage collection not yet run
    qa.index.local.LocalWriter._collect = die
with qa.index.local.LocalWriter({index_dir!r}) as builder:
    builder.remove_document("trains")
    builder.add_document(*article("police", ARTICLES["police"]))
    if point == "before-commit":
        die()
    builder.commit(MANIFEST)
"""


@pytest.mark.parametrize("mode", ["delta", "merge"])
@pytest.mark.parametrize("point", ["before-commit", "mid-write", "before-switch", "after-switch"])
def test_build_killed_leaves_a_working_index(index_dir, point, mode):
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), point=point, mode=mode, index_dir=str(index_dir))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    if point == "after-switch":
        assert_answers(index_dir, {"fruit", "police"}, {"trains"})
    else:
        assert_answers(index_dir, {"fruit", "trains"}, {"police"})
    build(index_dir, {"police": ARTICLES["police"]}, remove=("trains",) if point != "after-switch" else ())
    assert_answers(index_dir, {"fruit", "police"}, {"trains"})
    with open_index(index_dir) as index:
        assert index.passage_count() == 4 and keyword_docs(index, "苹果火车交警") == {"fruit", "police"}
    assert len(list((index_dir / "snapshots").iterdir())) == 2  # leftovers gone, previous kept
    assert len(list(index_dir.glob("store-*.sqlite"))) == 1


def _snapshot(index_dir: Path) -> Path:
    return index_dir / "snapshots" / current_version(index_dir)


def test_truncated_vectors_file_is_reported(index_dir):
    path = _snapshot(index_dir) / "vectors.faiss"
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(IndexCorrupt, match=r"vectors\.faiss is truncated.*qa build --full"):
        open_index(index_dir)


def test_garbled_vectors_file_of_the_same_size_is_reported(index_dir):
    path = _snapshot(index_dir) / "vectors.faiss"
    path.write_bytes(b"\xff" * path.stat().st_size)
    with pytest.raises(IndexCorrupt, match=r"vectors\.faiss cannot be read.*qa build --full"):
        open_index(index_dir)


def test_a_vectors_file_garbled_past_its_header_is_reported_at_the_first_dense_search(index_dir):
    path = _snapshot(index_dir) / "vectors.faiss"
    data = path.read_bytes()
    path.write_bytes(data[:16] + b"\xff" * (len(data) - 16))  # the header (kind, dimension, count) intact
    with open_index(index_dir) as index:  # opening reads the header only
        assert index.search_keyword(["苹", "果"], 3)
        with pytest.raises(IndexCorrupt, match=r"vectors\.faiss cannot be read.*qa build --full"):
            index.search_dense(np.ones(DIM, np.float32), 3)


def test_garbled_manifest_and_bm25_files_are_reported(index_dir):
    bm25 = _snapshot(index_dir) / "bm25" / "indptr.csc.index.npy"
    bm25.write_bytes(b"\x00" * bm25.stat().st_size)
    with pytest.raises(IndexCorrupt, match=r"bm25 cannot be read"):
        open_index(index_dir)
    (_snapshot(index_dir) / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexCorrupt, match=r"manifest\.json cannot be read.*qa build --full"):
        open_index(index_dir)


def test_garbled_store_is_reported(index_dir):
    store = next(index_dir.glob("store-*.sqlite"))
    store.write_bytes(os.urandom(store.stat().st_size))
    with pytest.raises(IndexCorrupt, match=r"Index store .*store-.*cannot be read.*qa build --full"):
        open_index(index_dir)



# -- delta segments -----------------------------------------------------------------------------
def generated(doc_id: str, rng: np.random.Generator, words: list[str]) -> tuple[str, list[str]]:
    sentences = ["".join(rng.choice(words, size=rng.integers(2, 9))) + "。" for _ in range(rng.integers(1, 5))]
    return doc_id, sentences


def results(index, queries: list[list[str]], vectors: np.ndarray) -> list:
    """Every query's keyword hits and dense hits as (doc_id, ordinal, score), by rank."""
    def named(hits):
        found = index.passages([pid for pid, _ in hits])
        return [(p.doc_id, p.ordinal, score) for (p, _), (_, score) in zip(found, hits, strict=True)]

    n = index.passage_count()
    return ([named(index.search_keyword(q, n)) for q in queries] + [named(index.search_keyword(q, 3)) for q in queries],
            [named(index.search_dense(v, 5)) for v in vectors])


def assert_same_answers(incremental: Path, full: Path, queries: list[list[str]], vectors: np.ndarray) -> None:
    with open_index(incremental) as a, open_index(full) as b:
        assert a.passage_count() == b.passage_count()
        assert {d.doc_id for d in a.documents()} == {d.doc_id for d in b.documents()}
        (keyword_a, dense_a), (keyword_b, dense_b) = results(a, queries, vectors), results(b, queries, vectors)
        assert keyword_a == keyword_b  # bit-identical BM25 scores, same ranks
        for hits_a, hits_b in zip(dense_a, dense_b, strict=True):  # exact search: same passages, scores to rounding
            assert [h[:2] for h in hits_a] == [h[:2] for h in hits_b]
            assert np.allclose([h[2] for h in hits_a], [h[2] for h in hits_b], atol=1e-5)
        for word in ("苹果", "交警", "一", "没有"):
            assert a.doc_freq(word) == b.doc_freq(word)


@pytest.mark.parametrize("reuse", [False, True])
def test_an_incremental_build_with_deltas_answers_as_a_full_build(tmp_path, reuse):
    rng = np.random.default_rng(7)
    words = list("苹果香蕉交警大队火车站城东西平安一二三四五六七八九十") + ["党建", "品牌", "巡逻"]
    live: dict[str, list[str]] = {}
    inc = tmp_path / "incremental"
    first = dict(generated(f"d{i}", rng, words) for i in range(40))
    build(inc, first)
    live.update(first)
    kinds = []
    for step in range(6):  # adds, removes, replacements; some remove what an earlier delta added
        remove = sorted(rng.choice(sorted(live), size=3, replace=False))
        add = dict(generated(f"s{step}-{i}", rng, words) for i in range(4))
        add[remove[0]] = generated(remove[0], rng, words)[1]  # replaced, not only removed
        build(inc, add, remove=remove, previous=open_index(inc) if reuse else None)
        for doc_id in remove:
            live.pop(doc_id)
        live.update(add)
        with open_index(inc) as index:
            kinds.append(bool(index.describe()["delta"]))
    assert all(kinds)  # every change went into a delta beside the first build's base
    full = tmp_path / "full"
    build(full, live)
    queries = [[w] for w in words] + [list("苹果交警"), ["党建", "巡逻", "党建"], list("火车一二"), ["没有"]]
    probes = np.stack([article(doc_id, live[doc_id])[2][0] for doc_id in sorted(live)[:10]])
    probes = np.concatenate([probes, np.random.default_rng(1).standard_normal((10, DIM)).astype(np.float32)])
    assert_same_answers(inc, full, queries, probes)


def test_a_delta_is_merged_at_the_threshold_and_old_snapshots_without_segment_files_still_serve(index_dir, monkeypatch):
    import qa.index.local

    def delta_of():
        with open_index(index_dir) as index:
            return index.describe()["delta"]

    build(index_dir, {"police": ARTICLES["police"]})
    assert delta_of() == {"base": "000001", "added": 2, "removed": 0}
    snap = _snapshot(index_dir)
    assert (snap / "bm25" / "data.csc.index.npy").stat().st_ino == (
        index_dir / "snapshots" / "000001" / "bm25" / "data.csc.index.npy").stat().st_ino  # linked, not rewritten
    build(index_dir, {}, remove=("fruit",))
    assert delta_of() == {"base": "000001", "added": 2, "removed": 2}
    monkeypatch.setattr(qa.index.local, "MERGE_ROWS", 3)
    build(index_dir, {"fruit": ARTICLES["fruit"]})  # 6 changed rows > 3: merged into one segment
    assert delta_of() == {}
    assert_answers(index_dir, {"fruit", "trains", "police"}, set())
    # a base written before segments (no lengths, no term-major counts) is read, and merged by the next build
    snap = _snapshot(index_dir)
    manifest = json.loads((snap / "manifest.json").read_text())
    for name in ("doc_len.npy", "tf_by_term.npy"):
        (snap / "bm25" / name).unlink()
        del manifest["files"][f"bm25/{name}"]
    (snap / "manifest.json").write_text(json.dumps(manifest))
    assert_answers(index_dir, {"fruit", "trains", "police"}, set())
    monkeypatch.setattr(qa.index.local, "MERGE_ROWS", 5000)
    build(index_dir, {}, remove=("trains",))
    assert delta_of() == {}
    assert (_snapshot(index_dir) / "bm25" / "doc_len.npy").is_file()
    build(index_dir, {"trains": ARTICLES["trains"]})
    assert delta_of() == {"base": "000005", "added": 2, "removed": 0}  # a delta beside the new base
    assert_answers(index_dir, {"fruit", "trains", "police"}, set())


def test_a_build_beside_a_base_reads_no_dense_index_and_an_emptied_delta_leaves_the_base_alone(index_dir, monkeypatch):
    """Adding beside the base reads none of the FAISS file (opening the previous snapshot checks its header; a
    question's first dense search reads it), and removing what the delta added leaves the base's files alone."""
    import qa.index.vectors

    real_load = qa.index.vectors.VectorIndex.load

    def refuse(*_args, **_kwargs):
        raise AssertionError("the dense index was read")

    monkeypatch.setattr(qa.index.vectors.VectorIndex, "load", refuse)
    build(index_dir, {"police": ARTICLES["police"]}, previous=open_index(index_dir))
    with open_index(index_dir) as index:
        assert index.describe()["delta"] == {"base": "000001", "added": 2, "removed": 0}
    build(index_dir, {}, remove=("police",), previous=open_index(index_dir))
    monkeypatch.setattr(qa.index.vectors.VectorIndex, "load", real_load)
    snap = _snapshot(index_dir)
    assert not (snap / "bm25-delta").exists() and not (snap / "vectors-delta").exists()
    assert json.loads((snap / "manifest.json").read_text())["format"] == 1  # one segment: the base's files, linked
    base = index_dir / "snapshots" / "000002"
    assert (snap / "vectors.faiss").stat().st_ino == (base / "vectors.faiss").stat().st_ino
    with open_index(index_dir) as index:
        assert index.describe()["delta"] == {}
    assert_answers(index_dir, {"fruit", "trains"}, {"police"})
    build(index_dir, {"police": ARTICLES["police"]})  # and a delta goes beside that snapshot again
    with open_index(index_dir) as index:
        assert index.describe()["delta"] == {"base": "000003", "added": 2, "removed": 0}
    assert_answers(index_dir, {"fruit", "trains", "police"}, set())
