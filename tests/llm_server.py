"""A scripted OpenAI-style chat-completions server on 127.0.0.1, for the written-answer tests.

Answers ``POST /v1/chat/completions`` as its ``mode`` says: ``ok`` streams
``reply`` in pieces of five characters, ``slow`` does so with a pause before each
piece, ``empty`` streams nothing, ``garbled`` sends a broken event, ``401`` and
``500`` answer with that status, ``hang`` accepts and never answers (until
``release`` is set; so does a request whose question holds ``hang_if``). Every
request body is kept in ``requests``. Used in-process (``tests/test_generate.py``)
and by a served app pointed at it with QA_LLM_URL (``tests/test_web_llm.py``).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Scripted)
        self.mode = "ok"
        self.reply = ""
        self.pause = 1.5  # seconds before each piece in "slow" mode
        self.hang_if: str | None = None  # a request whose question holds this text hangs, whatever the mode
        self.requests: list[dict] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        """The base URL to give as QA_LLM_URL."""
        return f"http://127.0.0.1:{self.server_port}/v1"


class Scripted(BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions as ``self.server.mode`` says."""

    server: ScriptedServer

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        server = self.server
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append(request)
        mode = server.mode
        if mode == "hang" or (server.hang_if and server.hang_if in request["messages"][-1]["content"]):
            server.release.wait(30)
            return
        if mode in ("401", "500"):
            self._send(int(mode), "application/json", json.dumps({"error": {"message": "no"}}).encode())
            return
        if mode == "garbled":
            self._send(200, "text/event-stream", b"data: {not json at all\n\n")
            return
        reply = "" if mode == "empty" else server.reply
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in [reply[i : i + 5] for i in range(0, len(reply), 5)]:
            if mode == "slow":
                time.sleep(server.pause)
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    """A started server, stopped (and any hanging request released) afterwards."""
    httpd = ScriptedServer()
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
