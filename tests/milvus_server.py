"""Start ``milvus-lite server`` (a real Milvus speaking gRPC) for the tests marked ``milvus``.

The server is the one pymilvus's ``milvus-lite`` package installs, so the tests
need nothing beyond the normal install. It listens on a free 127.0.0.1 port,
its start is awaited for a bounded time, and it is always stopped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

START_TIMEOUT = 60  # seconds
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> str:
    """The ``milvus-lite`` command of the running interpreter's environment (a venv need not be on PATH)."""
    beside = Path(sys.executable).with_name("milvus-lite")
    return str(beside) if beside.exists() else (shutil.which("milvus-lite") or "milvus-lite")


class MilvusServer:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MilvusServer":
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self._log = open(self.log_path, "a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [_binary(), "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"milvus-lite server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"milvus-lite server did not listen within {START_TIMEOUT}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if not self._log.closed:
            self._log.close()


@contextmanager
def running_server(data_dir: Path) -> Iterator[MilvusServer]:
    server = MilvusServer(data_dir).start()
    try:
        yield server
    finally:
        server.stop()


def build_seeds(env: dict[str, str], index_dir: Path) -> None:
    """``qa build`` of the seeds with the bundled model, as an operator runs it before starting web replicas
    (a replica never builds on Milvus); ``env``: QA_MILVUS_URI and maybe QA_MILVUS_COLLECTION."""
    built = subprocess.run([sys.executable, "-m", "qa", "build", str(ROOT / "seeds")], cwd=ROOT, capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, QA_INDEX_DIR=str(index_dir), **env))
    assert built.returncode == 0 and "5 added" in built.stdout, built.stderr
