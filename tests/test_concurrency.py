"""Load: 20 gradio_client clients asking 10 questions each against the running web chat.

No timed assertions (the machine is shared); the test asserts that nothing
fails and every answer that is not an abstention cites its sources, and
prints p50/p95 reply times. Run as a script to compare queue concurrency
limits on the same index::

    python tests/test_concurrency.py 1 2 4 8
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import served_app

CLIENTS = 20
ROUNDS = 10
TIMEOUT = 120  # seconds per request: a stuck queue fails the test instead of hanging it
QUESTIONS = [
    "蒙阴交警大队的党建品牌叫什么？",
    "滨州开发区交警大队有多少名党员民警？",
    "海陵巡特警大队党总支有多少名党员？",
    "交警大队怎样开展党建工作？",
    "那他们获得过哪些荣誉？",
    "流动党建是什么意思？",
    "民警如何服务群众？",
    "火星探测器什么时候发射？",
    "北京今天的天气怎么样？",
    "What did the traffic police brigade do?",
]
LAUNCH = ("import runpy, sys, qa.web.layout as layout; layout.CONCURRENCY = int(sys.argv[1]); sys.argv = sys.argv[2:]; "
          "runpy.run_path(sys.argv[0], run_name='__main__')")


def load(url: str) -> dict:
    """Every client asks every question once, in its own order; returns timings and failures."""
    from gradio_client import Client

    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        try:
            api = Client(url, verbose=False, download_files=False)
        except Exception as error:  # noqa: BLE001 - every failure is reported
            with lock:
                failures.append(f"client {c}: {error!r}")
            return
        for r in range(ROUNDS):
            question = QUESTIONS[(c + r) % len(QUESTIONS)]
            start = time.perf_counter()
            try:
                data = api.submit(question, [], api_name="/ask").result(timeout=TIMEOUT)
            except Exception as error:  # noqa: BLE001
                with lock:
                    failures.append(f"client {c} {question}: {error!r}")
                continue
            elapsed = time.perf_counter() - start
            with lock:
                times.append(elapsed)
                if "error" in data:
                    failures.append(f"{question}: {data['error']}")
                elif not data["abstained"] and not data["citations"]:
                    failures.append(f"{question}: answered without citations")

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(CLIENTS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * ROUNDS)
    wall = time.perf_counter() - start
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")
    return {"replies": len(times), "failures": failures, "wall_s": wall,
            "p50_s": statistics.median(times) if times else float("nan"), "p95_s": p95,
            "per_s": len(times) / wall if wall else 0.0}


def describe(result: dict, label: str) -> str:
    return (f"{label}: {result['replies']} replies in {result['wall_s']:.1f} s ({result['per_s']:.1f}/s), "
            f"p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s, failures {len(result['failures'])}")


@pytest.mark.slow
def test_twenty_clients_ten_questions_each(tmp_path_factory, capsys):
    with served_app.running_app(tmp_path_factory, "load-app") as app:
        check_load(app.url, capsys, "folder index")


@pytest.mark.slow
@pytest.mark.milvus
def test_twenty_clients_against_the_app_on_milvus(tmp_path_factory, capsys):
    from milvus_server import build_seeds, running_server

    with running_server(tmp_path_factory.mktemp("load-milvus") / "data") as server:
        build_seeds({"QA_MILVUS_URI": server.uri}, tmp_path_factory.mktemp("load-milvus-builder"))
        with served_app.running_app(tmp_path_factory, "load-app-milvus", env={"QA_MILVUS_URI": server.uri}) as app:
            check_load(app.url, capsys, "Milvus (milvus-lite server)")


def check_load(url: str, capsys, label: str) -> None:
    from qa.web.layout import CONCURRENCY

    result = load(url)
    with capsys.disabled():
        print("\n" + describe(result, f"{label}: {CLIENTS} clients x {ROUNDS} questions, concurrency {CONCURRENCY}"))
    assert not result["failures"], result["failures"][:5]
    assert result["replies"] == CLIENTS * ROUNDS


class LimitedApp(served_app.ServedApp):
    """The app with another queue concurrency limit (set before it builds the Blocks)."""

    def __init__(self, index_dir: Path, log: Path, limit: int) -> None:
        real = subprocess.Popen

        def popen(cmd, **kwargs):  # cmd is [python, app.py]
            return real([sys.executable, "-c", LAUNCH, str(limit), *cmd[1:]], **kwargs)

        with mock.patch.object(served_app.subprocess, "Popen", popen):
            super().__init__(index_dir, log)


def compare(limits: list[int]) -> None:
    """One index, one app per limit, the same load against each."""
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        for limit in limits:
            app = LimitedApp(Path(tmp) / "index", Path(tmp) / f"app-{limit}.log", limit).wait()
            try:
                from gradio_client import Client

                Client(app.url, verbose=False, download_files=False).predict(QUESTIONS[0], [], api_name="/ask")
                print(describe(load(app.url), f"concurrency {limit}"), flush=True)
            finally:
                app.stop()


if __name__ == "__main__":
    compare([int(a) for a in sys.argv[1:]] or [1, 2, 4, 8])
