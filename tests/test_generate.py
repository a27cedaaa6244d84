"""The written answer (qa/generate.py) against a scripted chat-completions server on 127.0.0.1.

Fast and deterministic: the server plays each failure the issue names (stopped
server, a socket that accepts and never answers, a refused key, an HTTP error, a
garbled or empty stream, a reply slower than the timeout) and a good reply. Every
failure must end in a fallback reason within the timeout, never a traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_server import scripted_server
from qa import generate
from qa.config import Settings
from qa.present.json import answer_to_json
from qa.types import Answer, Document, Hit, Passage

ROOT = Path(__file__).resolve().parents[1]
BODY = "这是一个基层党组织。43名党员民警无论寒冬酷暑都会时刻维护交通秩序。该队自2005年成立以来未发生违法违纪案件。"
DOC = Document("a", "/x/a.txt", "记滨州经济技术开发区交警大队党支部", BODY, "h", source="滨州日报", date="2014-05-01")
HITS = [Hit(Passage("a", 0, BODY, 0, len(BODY)), DOC, 0.9)]
QUESTION = "滨州经济技术开发区交警大队党支部有多少名党员民警？"


@pytest.fixture
def server():
    with scripted_server() as httpd:
        yield httpd


def _settings(port: int, timeout: int = 30) -> Settings:
    # a good reply gets time to spare on a loaded machine; the failure cases pass their own short timeout
    return Settings(llm_url=f"http://127.0.0.1:{port}/v1", llm_model="m", llm_timeout=timeout)


def test_good_reply_is_checked_and_kept_sentences_shown(server) -> None:
    server.reply = "该队有43名党员民警[1]。该队还为辖区居民免费提供早餐和理发服务[1]。"
    streamed: list[str] = []
    result = generate.write(_settings(server.server_port), QUESTION, HITS, streamed.append)
    assert result.fallback is None
    assert result.text == "该队有43名党员民警。[1]"
    assert [s.supported for s in result.sentences] == [True, False]
    assert "".join(streamed) == server.reply
    request = server.requests[0]
    assert request["stream"] is True and request["model"] == "m"
    user = request["messages"][-1]["content"]
    assert "[1] 标题：记滨州经济技术开发区交警大队党支部；来源：滨州日报；日期：2014-05-01" in user and QUESTION in user


@pytest.mark.parametrize(
    ("mode", "words"),
    [("401", "密钥"), ("500", "HTTP 500"), ("garbled", "无法读取"), ("empty", "空"),
     ("hang", "秒内"), ("slow", "秒内")],
)
def test_every_failure_is_a_fallback_within_the_timeout(server, mode: str, words: str) -> None:
    server.mode, server.reply = mode, "该队有43名党员民警[1]。" * 3
    started = time.monotonic()
    result = generate.write(_settings(server.server_port, timeout=2), QUESTION, HITS)
    assert time.monotonic() - started < 8  # the slow and hung replies would take 12 s and 30 s
    assert result.fallback and words in result.fallback and result.text == ""


def test_stopped_server_is_a_fallback() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = generate.write(_settings(port), QUESTION, HITS)
    assert result.fallback and "无法连接" in result.fallback


def test_no_answer_and_nothing_kept_fall_back(server) -> None:
    server.reply = "资料中没有找到答案。"
    assert generate.write(_settings(server.server_port), QUESTION, HITS).fallback == generate.NOT_ANSWERED
    server.reply = "该队有44名党员民警[1]。"
    assert generate.write(_settings(server.server_port), QUESTION, HITS).fallback == generate.NOTHING_KEPT


def test_abstained_question_never_reaches_the_model(server) -> None:
    answer = Answer(QUESTION, QUESTION, abstained=True, hits=HITS)
    result = generate.attach(_settings(server.server_port), answer)
    assert server.requests == [] and result.generated and result.generated.fallback == generate.NOT_ASKED


def test_json_has_generated_only_with_an_llm_url(server) -> None:
    answer = Answer(QUESTION, QUESTION, abstained=False, hits=HITS)
    assert "generated" not in answer_to_json(generate.attach(Settings(), answer))
    assert server.requests == []
    server.reply = "该队有43名党员民警[1]。"
    data = answer_to_json(generate.attach(_settings(server.server_port), answer))
    assert data["generated"] == {
        "model": "m",
        "text": "该队有43名党员民警。[1]",
        "sentences": [{"text": "该队有43名党员民警。", "citations": [1], "supported": True, "why": "所引段落能证实"}],
        "fallback": None,
    }


def test_help_imports_neither_openai_nor_httpx() -> None:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "qa", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in run.stderr.splitlines() if "|" in line}
    assert "openai" not in imported and "httpx" not in imported and "qa" in imported
