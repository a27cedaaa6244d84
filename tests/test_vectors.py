"""The FAISS wrapper: exact search equals brute force, IVF recall against brute force."""

from __future__ import annotations

import os
import threading

import numpy as np

from qa.index import vectors
from qa.index.vectors import VectorIndex, kind_for, nlist_for


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Normalised vectors around random centres: the shape of real embedding sets
    (topics), unlike uniform noise, which no approximate index can partition."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((max(n // 50, 8), dim)))
    picks = rng.integers(0, len(centres), n)
    # noise of norm ~0.6: a vector keeps a cosine of ~0.85 with its centre
    return unit(centres[picks] + 0.6 * rng.standard_normal((n, dim)) / np.sqrt(dim))


def brute_force(data: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = data @ query
    return [int(ids[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_flat_search_is_exact_and_id_addressed(tmp_path):
    rng = np.random.default_rng(0)
    data = unit(rng.standard_normal((500, 32)))
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = VectorIndex.build(ids, data, 32)
    assert index.kind == "flat" and len(index) == 500
    for q in data[:5]:
        hits = index.search(q, 10)
        assert [i for i, _ in hits] == brute_force(data, ids, q, 10)
        assert abs(hits[0][1] - 1.0) < 1e-5  # cosine of a vector with itself
    index.remove(ids[:250])
    assert len(index) == 250 and all(i >= 1250 for i, _ in index.search(data[0], 20))
    index.add(np.array([7], dtype=np.int64), data[:1] * 3.0)  # normalised on the way in
    [(best, score)] = index.search(data[0], 1)
    assert best == 7 and abs(score - 1.0) < 1e-5
    index.save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", "flat")
    assert loaded.search(data[300], 5) == index.search(data[300], 5)


def test_search_with_k_beyond_size_and_empty():
    data = unit(np.random.default_rng(1).standard_normal((3, 8)))
    index = VectorIndex.build(np.array([1, 2, 3]), data, 8)
    assert len(index.search(data[0], 50)) == 3
    empty = VectorIndex.build(np.zeros(0, dtype=np.int64), np.zeros((0, 8), np.float32), 8)
    assert empty.search(data[0], 5) == []


def test_ivf_recall_at_10_against_brute_force(tmp_path):
    n, dim = 20_000, 64
    data, queries = np.split(clustered(n + 200, dim), [n])  # queries: same topics, not in the index
    ids = np.arange(n, dtype=np.int64) * 3
    index = VectorIndex.build(ids, data, dim, kind=f"ivf{nlist_for(n)}")
    recall = np.mean([
        len({i for i, _ in index.search(q, 10)} & set(brute_force(data, ids, q, 10))) / 10 for q in queries
    ])
    assert recall >= 0.95, recall
    # removal works on IVF (the reason it is preferred over HNSW here)
    assert index.remove(ids[:1000]) == 1000
    assert all(i >= ids[1000] for i, _ in index.search(data[0], 10))
    index.save(tmp_path / "ivf.faiss")
    loaded = VectorIndex.load(tmp_path / "ivf.faiss", index.kind)
    assert loaded.search(queries[0], 10) == index.search(queries[0], 10)
    loaded.remove(ids[1000:1001])  # the id map survives a save/load
    assert len(loaded) == n - 1001


def test_kind_by_size_with_hysteresis():
    t = vectors.IVF_FROM
    assert kind_for(10) == "flat" and kind_for(t - 1) == "flat"
    assert kind_for(t).startswith("ivf")
    current = kind_for(t)
    assert kind_for(t - 10, current) == current  # no flip-flop around the threshold
    assert kind_for(t // 2 - 1, current) == "flat"
    assert nlist_for(100_000) in (1024, 2048) and nlist_for(10) == 256


def test_faiss_threads_are_set_per_calling_thread():
    """A build's bulk work uses every core in its own thread while a question in another
    thread searches with one, and neither changes the other (libgomp keeps the setting per thread)."""
    faiss = vectors._faiss()
    data = unit(np.random.default_rng(2).standard_normal((50, 8)))
    index = VectorIndex.build(np.arange(50), data, 8)
    bulk_on, searched = threading.Event(), threading.Event()
    seen: dict[str, int] = {}

    def build_side() -> None:
        with vectors._bulk():
            seen["bulk"] = faiss.omp_get_max_threads()
            bulk_on.set()
            searched.wait(30)
            seen["bulk after the search"] = faiss.omp_get_max_threads()

    def question_side() -> None:
        bulk_on.wait(30)
        index.search(data[0], 5)
        seen["search"] = faiss.omp_get_max_threads()
        searched.set()

    threads = [threading.Thread(target=build_side), threading.Thread(target=question_side)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    cores = os.cpu_count() or 1
    assert seen == {"bulk": cores, "search": 1, "bulk after the search": cores}
