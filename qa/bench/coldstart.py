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
    """(exit status, peak RSS in KiB) of a child, killed after ``timeout``.

    Peak RSS is read from /proc (VmHWM) while the child runs: ``ru_maxrss``
    from ``wait4`` would report the parent's size, which a child inherits at fork.
    """
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, _hwm(proc.pid))
        try:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped by Popen.poll
            return proc.returncode or 0, peak
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
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
    walls, rss, errors = [], [], []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        for r in range(repeats):
            out.seek(0), out.truncate(), err.seek(0), err.truncate()
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "qa", "ask", "--json", questions[r % len(questions)]],
                                    stdout=out, stderr=err, env=env)
            code, peak = _wait(proc, TIMEOUT)
            walls.append(time.perf_counter() - start)
            rss.append(peak)
            out.seek(0), err.seek(0)
            try:
                json.loads(out.read().decode("utf-8").strip().splitlines()[-1])
            except (ValueError, IndexError):
                errors.append(
                    f"exit {code}: {(err.read().decode('utf-8', 'replace').strip().splitlines() or ['?'])[-1]}"
                )
    return {"wall": stats(walls), "rss_mib": round(max(rss) / 1024), "errors": errors}


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
