"""Drive the running web chat through its named API endpoints with gradio_client."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from served_app import PASSWORD, running_app

pytestmark = pytest.mark.slow

QUESTION = "蒙阴交警大队的党建品牌叫什么？"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "api-app") as served:
        yield served


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False, download_files=False)


def check_shape(data: dict) -> None:
    assert set(data) >= {"question", "query", "abstained", "encoder", "lead", "citations"}
    assert data["citations"]  # answered, or shown as possibly related: never nothing
    for c in data["citations"]:
        assert set(c) >= {"rank", "doc_id", "title", "source", "date", "url", "path", "text", "start", "end", "score"}
    for s in data["lead"]:
        assert set(s) == {"text", "citation"}
        assert 1 <= s["citation"] <= len(data["citations"])


def test_first_start_built_the_index_from_the_seeds(app, client):
    docs = client.predict(api_name="/documents")
    seeds = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "seeds").iterdir())
    assert len(docs) == len(seeds)
    assert all(d["passages"] > 0 and d["title"] for d in docs)
    assert (app.index_dir).is_dir()


def test_ask_returns_the_cli_json_with_a_cited_lead(client):
    data = client.predict(QUESTION, [], api_name="/ask")
    check_shape(data)
    assert not data["abstained"]
    assert "情满崮乡" in "".join(s["text"] for s in data["lead"])
    top = data["citations"][data["lead"][0]["citation"] - 1]
    assert "蒙阴" in top["title"]
    assert top["end"] - top["start"] == len(top["text"])


def test_abstains_on_a_question_the_collection_cannot_answer(client):
    data = client.predict("火星探测器什么时候发射？", [], api_name="/ask")
    check_shape(data)
    assert data["abstained"] and data["lead"] == []


def test_follow_up_folds_in_the_earlier_question(client):
    first = "泰州海陵公安分局有多少名党员？"
    data = client.predict("那巡特警大队呢？", [first], api_name="/ask")
    check_shape(data)
    assert data["query"] != data["question"]
    assert "海陵" in data["citations"][0]["title"] or "海陵" in data["citations"][0]["text"]


def test_search_returns_k_passages_in_the_same_shape(client):
    data = client.predict("交警 党建", 3, api_name="/search")
    check_shape(data)
    assert 1 <= len(data["citations"]) <= 3


def test_chat_endpoint_returns_messages_and_answer(client):
    messages, data, cleared, panel = client.predict(QUESTION, [], api_name="/chat")
    assert cleared == ""
    assert [m["role"] for m in messages] == ["user", "assistant"]
    reply = messages[1]["content"]
    reply = reply if isinstance(reply, str) else "".join(c.get("text", "") for c in reply)
    assert "情满崮乡" in reply and 'href="#qa-cite:' in reply
    check_shape(data)
    assert 'id="qa-cited"' in panel


def test_admin_actions_are_refused_without_the_password(client, tmp_path):
    doc = tmp_path / "note.txt"
    doc.write_text("测试文章\n\n这是一篇测试文章。", encoding="utf-8")
    for call in (
        lambda: client.predict([handle_file(str(doc))], "wrong", api_name="/upload"),
        lambda: client.predict("", api_name="/rebuild"),
        lambda: client.predict(None, "", api_name="/remove"),
    ):
        with pytest.raises(Exception, match="密码"):
            call()


def test_upload_rejects_unsupported_files(client, tmp_path):
    bad = tmp_path / "run.sh"
    bad.write_text("echo hi", encoding="utf-8")
    with pytest.raises(Exception, match="不受支持|Invalid file type"):
        client.predict([handle_file(str(bad))], PASSWORD, api_name="/upload")


def test_upload_then_ask_then_remove(app, client, tmp_path):
    article = tmp_path / "weird name (1).txt"  # a browser's "../" in a name: tests/test_faults.py, in-process
    article.write_text(
        "青石湾社区图书角开放\n\n2024-03-02 来源：青石湾社区报\n\n青石湾社区图书角于三月二日开放，藏书一千二百册，"
        "由退休教师周明远义务管理，每周二和周六下午开放。",
        encoding="utf-8",
    )
    report, listing, _ = client.predict([handle_file(str(article))], PASSWORD, api_name="/upload")
    assert "新增 1 篇" in report and "青石湾" in listing
    saved = list((app.index_dir / "uploads").iterdir())
    assert [p.name for p in saved] == ["weird_name_1.txt"]

    data = client.predict("青石湾社区图书角由谁管理？", [], api_name="/ask")
    assert not data["abstained"]
    assert "周明远" in data["citations"][0]["text"]
    doc_id = data["citations"][0]["doc_id"]

    report, listing, _ = client.predict(doc_id, PASSWORD, api_name="/remove")
    assert "删除 1 篇" in report and "青石湾" not in listing
    assert not saved[0].exists()
    assert all(d["doc_id"] != doc_id for d in client.predict(api_name="/documents"))


def test_rebuild_is_incremental(client):
    report, listing, _ = client.predict(PASSWORD, api_name="/rebuild")
    assert "本次嵌入 0 段" in report and "未变" in report


def test_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(("超大文件。" * 1_500_000).encode("utf-8"))  # ~22 MB > QA_MAX_UPLOAD_MB=20
    with pytest.raises(Exception, match="(?i)size|超过"):
        client.predict([handle_file(str(big))], PASSWORD, api_name="/upload")
