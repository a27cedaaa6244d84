"""Cold starts for ``qa bench``: a fresh ``qa ask`` or ``qa serve`` process over an existing index.

Why a separate process: what a user waits for after typing ``qa ask`` is
interpreter start, imports, model load and index open, none of which an
in-process timing sees. Peak memory comes from the kernel's accounting of
the child (``wait4``), so it is the process's own and not the benchmark's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from ..config import Settings
from .synthetic import stats

TIMEOUT = 300  # seconds any child may take


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", **extra)
    for f in fields(Settings):
        env[f"QA_{f.name.upper()}"] = str(getattr(settings, f.name))
    return env


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, int]:
    """(exit status, peak RSS in KiB) of a child, killed after ``timeout``."""
    code, peak, _ = _wait_cpu(proc, timeout)
    return code, peak


def _wait_cpu(proc: subprocess.Popen, timeout: float) -> tuple[int, int, float]:
    """(exit status, peak RSS in KiB, CPU seconds) of a child, killed after ``timeout``.

    Peak RSS is read from /proc (VmHWM) while the child runs: ``ru_maxrss``
    from ``wait4`` would report the parent's size, which a child inherits at fork.
    CPU seconds (user + system, all threads) are what the machine's load changes
    least: on shared cores the wall time stretches, the work done does not.
    """
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, _hwm(proc.pid))
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped by Popen.poll
            return proc.returncode or 0, peak, 0.0
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM")), 0)
    except (OSError, ValueError):
        return 0


def ask(settings: Settings, index_dir: Path, questions: list[str], repeats: int) -> dict:
    """``qa ask --json`` as a fresh process over an existing index: wall time and peak RSS."""
    env = _env(settings.with_(index_dir=index_dir))
    walls, cpus, rss, errors = [], [], [], []
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        for r in range(repeats):
            out.seek(0), out.truncate(), err.seek(0), err.truncate()
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "qa", "ask", "--json", questions[r % len(questions)]],
                                    stdout=out, stderr=err, env=env)
            code, peak, cpu = _wait_cpu(proc, TIMEOUT)
            walls.append(time.perf_counter() - start)
            cpus.append(cpu)
            rss.append(peak)
            out.seek(0), err.seek(0)
            try:
                json.loads(out.read().decode("utf-8").strip().splitlines()[-1])
            except (ValueError, IndexError):
                errors.append(
                    f"exit {code}: {(err.read().decode('utf-8', 'replace').strip().splitlines() or ['?'])[-1]}"
                )
    return {"wall": stats(walls), "cpu": stats(cpus), "rss_mib": round(max(rss) / 1024), "errors": errors,
            "load": [round(load, 2), round(os.getloadavg()[0], 2)]}


# What a one-off ``qa ask`` spends its start on, one step after the other in one fresh process (in
# ``qa ask`` itself some steps overlap in background threads, so its wall time is below the sum).
# Run as ``python -c``: importing ``qa.bench`` in the child would load what is being measured.
_STEPS = r"""
import json, sys, time
out = []
last = (time.perf_counter(), time.process_time())
def step(name):
    global last
    now = (time.perf_counter(), time.process_time())
    out.append({"step": name, "wall_ms": round(1000 * (now[0] - last[0]), 1),
                "cpu_ms": round(1000 * (now[1] - last[1]), 1)})
    last = (time.perf_counter(), time.process_time())
import qa.cli
step("import qa.cli (click, settings, errors)")
from qa.pipeline import Bot
step("import qa.pipeline (numpy, the stages)")
from qa.config import Settings
settings = Settings.load()
bot = Bot(settings)
bot.has_index()
step("settings, index located")
from qa import segment
segment.prepare(settings.cache_dir)
step("jieba: prefix dictionary")
segment.prepare_tagger()
step("jieba: part-of-speech model (jieba.posseg)")
encoder = bot.asker.encoders.query()
step("question encoder: openvino, tokenizer, compile")
encoder.encode_queries(["warm"])
step("question encoder: first inference")
bot.index()
step("index open: faiss, bm25s + scipy, sqlite")
bot.ask(sys.argv[1])
step("the question answered")
print(json.dumps(out))
"""


def steps(settings: Settings, index_dir: Path, question: str, repeats: int = 3) -> dict:
    """``_STEPS`` in fresh processes: the median wall and CPU milliseconds of each step, and the
    interpreter's own start (``python -c pass``) for scale."""
    env = _env(settings.with_(index_dir=index_dir))
    load = os.getloadavg()[0]
    runs: list[list[dict]] = []
    bare = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, timeout=TIMEOUT)
        bare.append(time.perf_counter() - start)
        done = subprocess.run([sys.executable, "-c", _STEPS, question], env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        try:
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": f"exit {done.returncode}: {tail}"}
    median = lambda values: round(sorted(values)[len(values) // 2], 1)  # noqa: E731
    rows = [{"step": first["step"], "wall_ms": median([r[i]["wall_ms"] for r in runs]),
             "cpu_ms": median([r[i]["cpu_ms"] for r in runs])} for i, first in enumerate(runs[0])]
    return {"interpreter_ms": round(1000 * sorted(bare)[len(bare) // 2], 1), "steps": rows, "n": repeats,
            "load": [round(load, 2), round(os.getloadavg()[0], 2)]}


def build(settings: Settings, seeds: Path, cache_dir: Path | None = None) -> dict:
    """``qa build`` of the seeds into a fresh folder: wall time, CPU seconds and peak RSS.

    ``cache_dir``: a fresh cache folder too, so the model conversion, the OpenVINO
    export and the precision measurement are part of it (minutes); None keeps the
    settings' cache, where they are done already (the usual rebuild)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qa-bench-build-") as tmp:
        extra = settings.with_(index_dir=Path(tmp) / "index", cache_dir=cache_dir or settings.cache_dir)
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "qa", "build", str(seeds)], stdout=subprocess.DEVNULL,
                                    stderr=err, env=_env(extra))
            code, peak, cpu = _wait_cpu(proc, TIMEOUT * 4)
            wall = time.perf_counter() - start
            err.seek(0)
            tail = (err.read().decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "rss_mib": round(peak / 1024),
            "fresh_cache": cache_dir is not None, "error": None if code == 0 else f"exit {code}: {tail}",
            "load": [round(load, 2), round(os.getloadavg()[0], 2)]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(settings: Settings, index_dir: Path, question: str) -> dict:
    """``qa serve`` from process start until gradio_client gets its first answer."""
    import importlib.util

    if importlib.util.find_spec("gradio_client") is None:
        return {"skipped": "gradio_client is not installed (pip install -e .[test])"}
    from gradio_client import Client

    port = _free_port()
    env = _env(settings.with_(index_dir=index_dir, host="127.0.0.1", port=port))
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "qa", "serve"], stdout=log, stderr=subprocess.STDOUT, env=env)
        result: dict = {}
        try:
            while time.perf_counter() - start < TIMEOUT and proc.poll() is None:
                try:
                    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
                except Exception:  # noqa: BLE001 - any failure to connect means not listening yet
                    time.sleep(0.25)
                    continue
                result["ready_s"] = round(time.perf_counter() - start, 2)
                data = client.predict(question, [], api_name="/ask")
                result["first_answer_s"] = round(time.perf_counter() - start, 2)
                result["cited"] = bool(data.get("citations"))
                break
            else:
                log.seek(0)
                tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
                result["error"] = f"no answer (exit {proc.poll()}): {' | '.join(tail)}"
        finally:
            proc.terminate()
            _, peak = _wait(proc, 20)
            result["rss_mib"] = round(peak / 1024)
    return result
