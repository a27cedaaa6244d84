"""Start ``python app.py`` in a subprocess for the API and browser tests.

Each test module gets its own app on a free port with a fresh index directory,
so the first-start path (build from the seeds) is exercised too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "test-admin-secret"
START_TIMEOUT = 240  # seconds: first start builds the index from the seeds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedApp:
    def __init__(self, index_dir: Path, log: Path, password: str = PASSWORD, env: dict | None = None,
                 temp_parent: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.index_dir = index_dir
        self.log_path = log
        self.temp_parent = temp_parent or index_dir.parent / "gradio-temp"  # the app makes its upload folder here
        env = dict(os.environ, QA_INDEX_DIR=str(index_dir), QA_SEEDS_DIR=str(ROOT / "seeds"),
                   QA_ADMIN_PASSWORD=password, QA_HOST="127.0.0.1", QA_PORT=str(self.port),
                   HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
                   GRADIO_TEMP_DIR=str(self.temp_parent), **(env or {}))
        self._log = open(log, "w", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self) -> "ServedApp":
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "gradio_api/info", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise AssertionError(f"app did not start within {START_TIMEOUT}s:\n{self.log()}")

    def temp_files(self) -> list[Path]:
        """Every file under gradio's temp folder of this app (uploads waiting, downloads, ...)."""
        return sorted(p for p in self.temp_parent.rglob("*") if p.is_file())

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@contextmanager
def running_app(tmp_path_factory, name: str, env: dict | None = None):
    """A started app in a fresh temporary folder, stopped afterwards; ``env``: extra variables (QA_MILVUS_URI)."""
    base = tmp_path_factory.mktemp(name)
    served = ServedApp(base / "index", base / "app.log", env=env).wait()
    try:
        yield served
    finally:
        served.stop()
