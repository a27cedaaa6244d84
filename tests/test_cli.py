"""The qa command in-process (click's runner) and, where start-up matters, as a subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from qa.cli import cli


@pytest.fixture
def env(tmp_path, seeds_dir, tiny_model_dir, monkeypatch):
    seeds = tmp_path / "seeds"
    shutil.copytree(seeds_dir, seeds)
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("QA_MODEL", str(tiny_model_dir))
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys, qa.cli; heavy = [m for m in ('torch', 'sentence_transformers', 'faiss', 'gradio', 'jieba',"
            " 'pymilvus')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "qa", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "ask" in result.stdout and "build" in result.stdout


def test_ask_before_any_build_builds_the_seeds_first(env):
    result = run("ask", "海陵巡特警大队党总支有多少名党员？")
    assert result.exit_code == 0, result.output
    assert "No index yet" in result.stderr and "building it from" in result.stderr
    assert "[1]" in result.stdout and "模型: tiny-chars" in result.stdout


def test_ask_json_reads_questions_from_stdin_one_per_line(env):
    run("build")
    result = run("ask", "--json", "-k", "2", "-", input="蒙阴交警大队的党建品牌叫什么？\n\n今天的天气怎么样？\n")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    # the first is made of the collection's words; the weather is nowhere in it
    expected = {"蒙阴交警大队的党建品牌叫什么？": False, "今天的天气怎么样？": True}
    for line, (question, abstains) in zip(lines, expected.items(), strict=True):
        obj = json.loads(line)
        assert obj["question"] == question and obj["abstained"] is abstains, obj["signals"]
        assert obj["encoder"] == "tiny-chars" and 1 <= len(obj["citations"]) <= 2
        assert bool(obj["lead"]) is not abstains
        for c in obj["citations"]:
            assert {"rank", "doc_id", "title", "source", "date", "url", "path", "text", "start", "end", "score"} <= set(
                c
            )


def test_docs_lists_every_document(env):
    run("build")
    docs = json.loads(run("docs", "--json").stdout)
    assert len(docs) == 5
    assert {"doc_id", "title", "source", "date", "path", "passages"} <= set(docs[0])
    assert any(d["date"] == "2023-08-15" and d["source"] == "人民视点" for d in docs)
    plain = run("docs").stdout
    assert all(d["doc_id"] in plain for d in docs)


def test_remove_then_docs(env):
    run("build")
    doc_id = json.loads(run("docs", "--json").stdout)[0]["doc_id"]
    assert run("remove", doc_id).exit_code == 0
    assert doc_id not in run("docs").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "/no/such/folder"], "does not exist"),
        (["remove", "nope"], "No index yet"),
        (["eval", "/no/such.jsonl"], "Cannot read"),
        (["ask", "-k", "0", "交警"], "Top-k"),
    ],
)
def test_errors_are_one_clear_line(env, args, message):
    result = run(*args)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_damaged_index_says_how_to_recover(env):
    run("build")
    index = env / "index"
    for faiss_file in index.rglob("vectors.faiss"):
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    result = run("ask", "交警")
    assert result.exit_code != 0 and "qa build --full" in result.stderr
    assert run("build", "--full").exit_code == 0
    assert run("ask", "交警").exit_code == 0


def test_a_damaged_index_is_rebuilt_by_a_plain_build_that_says_why(env):
    run("build")
    for faiss_file in (env / "index").rglob("vectors.faiss"):
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    result = run("build")
    assert result.exit_code == 0, result.output
    assert "Full rebuild: the index could not be read (Index file" in result.stdout
    assert "5 added" in result.stdout and run("ask", "交警").exit_code == 0


def test_another_model_than_the_index_was_built_with_asks_for_a_build_not_a_repair(env, tiny_model_dir, monkeypatch):
    run("build")
    other = env / "tiny-other"
    shutil.copytree(tiny_model_dir, other)
    monkeypatch.setenv("QA_MODEL", str(other))
    result = run("ask", "交警")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "built with another embedding model (tiny-chars), but tiny-other is active" in result.stderr
    assert "Run: qa build" in result.stderr and "--full" not in result.stderr  # nothing is damaged
    rebuilt = run("build")
    assert "Full rebuild: the embedding model changed (tiny-chars -> tiny-other)" in rebuilt.stdout
    assert run("ask", "交警").exit_code == 0


def test_eval_compares_modes_and_fusions(env, eval_dir, eval_rows):
    run("build")
    questions = str(eval_dir / "questions.jsonl")
    answerable = sum(r["answer"] is not None for r in eval_rows)
    result = run("eval", questions, "--mode", "all", "--fusion", "rrf", "--json")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert set(reports) == {"bm25", "dense", "hybrid"}
    for report in reports.values():
        assert report["answerable"] == answerable and report["unanswerable"] == len(eval_rows) - answerable
        assert 0 <= report["hit@1"] <= report["hit@5"] <= 1
    assert reports["bm25"] != reports["dense"]  # the modes really retrieve differently
    one = run("eval", questions, "--mode", "bm25", "--json")
    ranks = ("hit@1", "hit@5", "mrr")  # one retriever ranks alike under either fusion (the lead weighs its scores)
    assert [json.loads(one.stdout)[k] for k in ranks] == [reports["bm25"][k] for k in ranks]
    text = run("eval", questions).stdout
    assert text.startswith(f"[hybrid/weighted] answerable {answerable}: hit@1 ")
    assert run("eval", questions, "--mode", "keywords").exit_code == 2  # click names the choices


def test_model_info_and_install_through_the_command(env, tiny_model_dir):
    info = json.loads(run("model", "info", "--json").stdout)
    assert info["active"] == "tiny-chars" and info["kind"] == "local directory"
    assert info["location"] == str(tiny_model_dir.resolve())
    bundled = json.loads(run("--model", "", "model", "info", "--json").stdout)
    assert bundled["active"] == "multilingual-e5-small" and bundled["kind"] == "bundled"
    installed = run("model", "install")  # already converted in the shared cache: it says where
    assert installed.exit_code == 0 and installed.stdout.startswith("Bundled model ready in ")
    assert bundled["installed"] and installed.stdout.strip().endswith(str(bundled["location"]))
    plain = run("model", "info").stdout
    assert "active: tiny-chars" in plain


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_serve_on_a_non_loopback_address_says_what_is_reachable(env, monkeypatch, host, warned):
    import qa.web.server as server
    from qa.web.guard import RequestGuard

    launched = {}
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(env / "gradio-temp"))  # serve makes its own folder in here
    monkeypatch.setenv("QA_ADMIN_PASSWORD", "s3cret")
    # bind nothing: keep what would be served
    monkeypatch.setattr(server, "run", lambda app, settings: launched.update(app=app, settings=settings))
    result = run("serve", "--host", host)
    assert result.exit_code == 0, result.output
    assert launched["settings"].host == host and server.page_options(launched["settings"])["show_error"] is False
    assert any(m.cls is RequestGuard for m in launched["app"].user_middleware)  # in front of the chat and the API
    if warned:
        assert f"listening on {host}:7860" in result.stderr and "ask questions" in result.stderr
        assert "QA_ADMIN_PASSWORD" in result.stderr and "TLS" in result.stderr
    else:
        assert "Warning" not in result.stderr
