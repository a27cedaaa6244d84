"""Knowledge bases (qa/kb.py, qa/index/bases.py) on both index backends, with the tiny real model.

Each test runs on the folder index and on a real Milvus (``milvus-lite server``,
marked ``milvus``). Isolation is proved by asking each base the other's
questions; "nothing re-embedded" by a counting encoder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa.cli import cli
from qa.config import Settings
from qa.errors import IndexBusy, IndexMissing, UsageError
from qa.kb import Bases, NoSuchBase
from qa.pipeline import Bot
from test_pipeline import Counting  # the real encoder, counting the passages it encodes

ROOT = Path(__file__).resolve().parents[1]
CMRC = ROOT / "eval" / "cmrc2018-trial"
CMRC_DOCS = [f"cmrc-trial-000{i}.txt" for i in range(1, 6)]
SEED_QUESTIONS = ["蒙阴交警大队的党建品牌叫什么？", "海陵巡特警大队党总支有多少名党员？"]


@pytest.fixture(params=["folder", pytest.param("milvus", marks=pytest.mark.milvus)])
def deployment(request, tmp_path, tiny_model_dir) -> Settings:
    """The deployment's settings: a folder index, or a Milvus collection prefix of its own on the shared server."""
    settings = Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir))
    if request.param == "milvus":
        server = request.getfixturevalue("milvus_server")
        settings = settings.with_(milvus_uri=server.uri, milvus_collection=f"kb_{uuid.uuid4().hex[:10]}")
    return settings


@pytest.fixture
def cmrc_docs(tmp_path) -> Path:
    folder = tmp_path / "cmrc"
    folder.mkdir()
    for name in CMRC_DOCS:
        shutil.copy(CMRC / "docs" / name, folder / name)
    return folder


def cmrc_questions() -> list[str]:
    rows = [json.loads(line) for line in (CMRC / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [r["question"] for r in rows if r["doc"] in CMRC_DOCS][:6]


def under(path: str, folder: Path) -> bool:
    return folder.resolve() in Path(path).resolve().parents


# -- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "hr", "HR-rules_2", "a" * 64, "0"])
def test_valid_names(name, tmp_path):
    assert Settings.load(index_dir=tmp_path, kb=name).kb == name


@pytest.mark.parametrize("name", ["", "a" * 65, "人事", "hr rules", "../x", "a/b", ".hidden", "x\n", "a.b"])
def test_invalid_names_are_one_clear_line(name, tmp_path):
    with pytest.raises(UsageError, match="not a valid knowledge base name") as caught:
        Settings.load(index_dir=tmp_path, kb=name)
    assert "\n" not in str(caught.value) and "letters, digits, - or _" in str(caught.value)
    with pytest.raises(UsageError, match="not a valid knowledge base name"):
        Bases(Settings.load(index_dir=tmp_path)).create(name)


def test_milvus_names_of_two_bases_never_overlap(tmp_path):
    """Each base's alias, collections and lock; no base's leftover pattern (``<alias>_b<n>``) takes another's."""
    import re

    from qa.index.bases import collection

    settings = Settings.load(index_dir=tmp_path)
    names = ["default", "x", "x_b000001", "x-b000001", "x__b000001", "x_0b000001", "x_lock", "kbs", "x_kb_y", "b000001"]
    owned = {}
    for name in names:
        alias = collection(settings, name)
        owned[name] = {alias, f"{alias}_lock", f"{alias}_b000001", f"{alias}_b000001_meta"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alias)
    assert len({collection(settings, n) for n in names}) == len(names)
    everything = set().union(*owned.values()) | {"qa_kbs"}
    for name in names:
        alias = collection(settings, name)
        leftovers = re.compile(re.escape(alias) + r"(_b\d{6})(_meta)?")
        assert {c for c in everything if leftovers.fullmatch(c) or c == f"{alias}_lock"} <= owned[name], name


# -- default: an existing index, untouched ---------------------------------------------------------------
def _layout(settings: Settings) -> object:
    """What an existing index is made of: the folder's files, or the Milvus collections and alias."""
    if settings.milvus_uri:
        from pymilvus import MilvusClient

        client = MilvusClient(uri=settings.milvus_uri)
        try:
            names = sorted(c for c in client.list_collections() if c.startswith(settings.milvus_collection))
            return names, client.describe_alias(alias=settings.milvus_collection)["collection_name"]
        finally:
            client.close()
    return sorted(str(p.relative_to(settings.index_dir)) for p in settings.index_dir.rglob("*")
                  if not p.name.endswith(("-shm", "-wal")))  # SQLite's own, beside a database being read


def test_an_index_built_before_bases_opens_as_default_with_nothing_re_embedded(deployment, corpus, tiny_encoder):
    before = Bot(deployment, encoder=Counting(tiny_encoder))  # today's way: no base named anywhere
    built = before.build([corpus])
    assert built.embedded > 0
    layout = _layout(deployment)
    expected = {i.doc_id for i in before.documents()}

    counting = Counting(tiny_encoder)
    bases = Bases(deployment, encoder=counting)
    assert [b.name for b in bases.all()] == ["default"]
    bot = bases.open("default")  # what the web and the API will call
    assert bot.settings.index_dir == deployment.index_dir
    assert bot.settings.milvus_collection == deployment.milvus_collection
    answer = bot.ask(SEED_QUESTIONS[0])
    assert answer.hits and {i.doc_id for i in bot.documents()} == expected
    assert bases.counts("default") == (len(expected), built.passages)
    assert _layout(deployment) == layout  # opening moved and wrote nothing

    again = bases.server_open("default").build([corpus])
    assert again.embedded == 0 and counting.passages == [] and sorted(again.unchanged) == sorted(expected)
    bases.create("other")  # another base beside it changes nothing of default's
    assert {i.doc_id for i in bases.open("default").documents()} == expected
    assert counting.passages == []


def test_the_cli_opens_an_existing_index_as_default(tmp_path, corpus, tiny_model_dir, monkeypatch):
    settings = Settings.load(index_dir=tmp_path / "index", model=str(tiny_model_dir))
    Bot(settings).build([corpus])
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_MODEL", str(tiny_model_dir))
    for args in (["ask", "--json", SEED_QUESTIONS[0]], ["--kb", "default", "ask", "--json", SEED_QUESTIONS[0]]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["citations"] and "No index yet" not in result.stderr


# -- isolation -------------------------------------------------------------------------------------------
def test_each_base_answers_only_from_its_own_documents(deployment, corpus, cmrc_docs, tiny_encoder):
    bases = Bases(deployment, encoder=tiny_encoder)
    bases.create("cmrc", title="CMRC 2018")
    seeds, cmrc = bases.server_open("default"), bases.server_open("cmrc")
    seeds.build([corpus])
    cmrc.build([cmrc_docs])
    assert len(seeds.documents()) == 5 and len(cmrc.documents()) == len(CMRC_DOCS)
    assert seeds.settings.uploads_dir != cmrc.settings.uploads_dir
    assert seeds.settings.index_dir != cmrc.settings.index_dir
    for bot, own in ((seeds, corpus), (cmrc, cmrc_docs)):
        for question in SEED_QUESTIONS + cmrc_questions():  # its own questions and the other base's
            answer = bot.ask(question)
            assert answer.hits, question
            assert all(under(h.document.path, own) for h in answer.hits), (bot.settings.kb, question)
        assert all(under(i.path, own) for i in bot.documents())
    assert bases.counts("cmrc")[0] == len(CMRC_DOCS)


def test_building_one_base_blocks_neither_asking_nor_building_another(deployment, corpus, cmrc_docs, tiny_encoder):
    bases = Bases(deployment, encoder=tiny_encoder)
    bases.create("a")
    bases.create("b")
    a, b = bases.server_open("a"), bases.server_open("b")
    a.build([corpus])
    with a.indexer.backend.writer():  # a build of "a" holds its lock
        with pytest.raises(IndexBusy):
            a.build([corpus])
        assert a.ask(SEED_QUESTIONS[0]).hits  # asking the base being built still answers
        report = b.build([cmrc_docs])  # building another base is not blocked
        assert len(report.added) == len(CMRC_DOCS)
        assert b.ask(cmrc_questions()[0]).hits
        with pytest.raises(IndexBusy):
            bases.delete("a")  # nor is a base deleted under a running build
    assert [i.doc_id for i in a.documents()]


def test_a_new_base_is_never_built_implicitly(deployment):
    from qa.kb import ensure_index

    bases = Bases(deployment)
    bases.create("empty")
    bot = bases.server_open("empty")
    with pytest.raises(IndexMissing, match="qa --kb empty build FOLDER"):
        ensure_index(bot, say=lambda _: None)
    assert bases.counts("empty") == (0, 0)
    assert bot.settings.seeds_dir.is_dir() and not any(bot.settings.seeds_dir.iterdir())


# -- private bases ---------------------------------------------------------------------------------------
def test_a_private_base_is_unreachable_without_its_key(deployment, corpus, tiny_encoder):
    bases = Bases(deployment, encoder=tiny_encoder)
    bases.create("public-one")
    base, key = bases.create("secret", title="内部", private=True)
    assert base.private and key and key.startswith("qakb-") and len(key) > 40
    bases.server_open("secret").build([corpus])  # the operator (CLI) needs no key

    stored = bases.registry.get("secret")
    assert stored is not None and key not in json.dumps(stored)  # only the hash is kept
    assert stored["key_sha256"] == hashlib.sha256(key.encode()).hexdigest()

    def refusal(name: str, given: str | None) -> str:
        with pytest.raises(NoSuchBase) as caught:
            bases.open(name, given)
        return str(caught.value)

    unknown = refusal("nosuch", None)
    assert "secret" not in unknown and "public-one" in unknown and "default" in unknown
    for given in (None, "", "wrong", key[:-1], key + "x", key.upper()):
        assert refusal("secret", given) == unknown.replace("nosuch", "secret")  # the same words as a missing base
    assert refusal("../secret", key) == unknown.replace("nosuch", "../secret")
    assert [b.name for b in bases.visible()] == ["default", "public-one"]
    assert [b.name for b in bases.visible(["wrong", key])] == ["default", "public-one", "secret"]
    assert bases.open("secret", key).ask(SEED_QUESTIONS[0]).hits
    assert bases.open("public-one", None) and bases.open("default", "anything")

    fresh = Bases(deployment).new_key("secret")  # another process issues a new key: the old one is revoked
    assert fresh != key
    refusal("secret", key)
    assert bases.open("secret", fresh).settings.kb == "secret"
    with pytest.raises(UsageError, match="public"):
        bases.new_key("public-one")


# -- deleting --------------------------------------------------------------------------------------------
def test_delete_removes_the_base_and_its_index(deployment, corpus, tiny_encoder):
    bases = Bases(deployment, encoder=tiny_encoder)
    bases.create("gone", private=True)
    bot = bases.server_open("gone")
    bot.build([corpus])
    with pytest.raises(UsageError, match="cannot be deleted"):
        bases.delete("default")
    bases.delete("gone")
    assert [b.name for b in bases.all()] == ["default"]
    with pytest.raises(NoSuchBase):
        bases.server_open("gone")
    with pytest.raises(NoSuchBase):
        bases.delete("gone")
    bases.create("gone")  # the same name again: empty, nothing of the old one comes back
    assert bases.counts("gone") == (0, 0)
    assert not bases.get("gone").private


# -- the command ----------------------------------------------------------------------------------------
@pytest.fixture
def env(deployment, tmp_path, seeds_dir, monkeypatch):
    monkeypatch.setenv("QA_INDEX_DIR", str(deployment.index_dir))
    monkeypatch.setenv("QA_SEEDS_DIR", str(seeds_dir))
    monkeypatch.setenv("QA_MODEL", deployment.model)
    if deployment.milvus_uri:
        monkeypatch.setenv("QA_MILVUS_URI", deployment.milvus_uri)
        monkeypatch.setenv("QA_MILVUS_COLLECTION", deployment.milvus_collection)
    return deployment


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_the_kb_commands(env, cmrc_docs, monkeypatch):
    created = run("kb", "create", "cmrc", "--title", "CMRC 2018", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {"name": "cmrc", "title": "CMRC 2018", "private": False}
    private = run("kb", "create", "hr", "--private", "--json")
    key = json.loads(private.stdout)["key"]
    assert json.loads(private.stdout) == {"name": "hr", "title": "", "private": True, "key": key}
    again = run("kb", "create", "CMRC")
    assert again.exit_code != 0 and "exists already" in again.stderr and len(again.stderr.splitlines()) == 1

    assert run("--kb", "cmrc", "build", str(cmrc_docs)).exit_code == 0
    assert run("ask", "--kb", "cmrc", "--json", cmrc_questions()[0]).exit_code == 0
    asked = run("--kb", "cmrc", "ask", "--json", SEED_QUESTIONS[0])
    assert all(under(c["path"], cmrc_docs) for c in json.loads(asked.stdout)["citations"])
    docs = json.loads(run("--kb", "cmrc", "docs", "--json").stdout)
    assert len(docs) == len(CMRC_DOCS)
    monkeypatch.setenv("QA_KB", "cmrc")
    assert run("remove", docs[0]["doc_id"]).exit_code == 0
    monkeypatch.delenv("QA_KB")
    listed = {r["name"]: r for r in json.loads(run("kb", "list", "--json").stdout)}
    assert listed["cmrc"] == {"name": "cmrc", "title": "CMRC 2018", "documents": len(CMRC_DOCS) - 1,
                              "passages": listed["cmrc"]["passages"], "private": False}
    assert listed["hr"]["private"] and listed["default"]["documents"] == 0  # the operator sees private bases
    rows = cmrc_docs.parent / "q.jsonl"
    rows.write_text(json.dumps({"question": cmrc_questions()[1], "answer": "x", "doc": CMRC_DOCS[0]}) + "\n")
    scored = run("--kb", "cmrc", "eval", str(rows), "--json")
    assert scored.exit_code == 0 and "hit@1" in json.loads(scored.stdout)

    unknown = run("--kb", "nosuch", "ask", "x")
    assert unknown.exit_code == 2 and unknown.stderr.splitlines() == [
        "Error: There is no knowledge base 'nosuch'. Knowledge bases: default, cmrc."]
    empty = run("--kb", "hr", "ask", "x")  # the CLI needs no key; an unbuilt base says how to build it
    assert empty.exit_code != 0 and "qa --kb hr build FOLDER" in empty.stderr

    new = run("kb", "key", "hr", "--json")
    assert json.loads(new.stdout)["key"] != key
    kept = run("kb", "delete", "cmrc", input="n\n")
    assert kept.exit_code != 0 and "Nothing deleted" in kept.stdout
    assert run("kb", "delete", "default", "--yes").exit_code != 0
    assert run("kb", "delete", "cmrc", input="y\n").exit_code == 0
    assert run("kb", "delete", "hr", "--yes").exit_code == 0
    assert [r["name"] for r in json.loads(run("kb", "list", "--json").stdout)] == ["default"]


def test_serve_serves_every_base_and_refuses_only_an_unknown_one(env, cmrc_docs, tmp_path, monkeypatch):
    """``qa --kb NAME serve``: the API reads every base (the key rules are tests/test_api_kb.py's); NAME is
    kept as the base the chat page opens on. The app is built as ``serve`` builds it, then not listened on."""
    from fastapi.testclient import TestClient

    unknown = run("--kb", "nosuch", "serve")
    assert unknown.exit_code == 2 and unknown.stderr.splitlines() == [
        "Error: There is no knowledge base 'nosuch'. Knowledge bases: default."]
    assert run("build").exit_code == 0 and run("kb", "create", "cmrc").exit_code == 0
    assert run("--kb", "cmrc", "build", str(cmrc_docs)).exit_code == 0
    served: dict = {}
    monkeypatch.setattr("qa.web.server.run", lambda app, settings: served.update(app=app, settings=settings))
    monkeypatch.setattr("qa.web.server.stop_on_sigterm", lambda: None)
    monkeypatch.setattr("qa.web.server.preload_full_encoder", lambda bot: threading.Thread(target=lambda: None))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    result = run("serve", "--kb", "cmrc")
    assert result.exit_code == 0, result.output
    assert served["settings"].kb == "cmrc"
    client = TestClient(served["app"], client=("127.0.0.1", 40000))
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["default", "cmrc"]
    asked = client.post("/api/ask", json={"kb": "cmrc", "question": cmrc_questions()[0]}).json()
    own = {d["doc_id"] for d in client.get("/api/documents?kb=cmrc").json()}
    cited = {c["doc_id"] for c in asked["citations"]}
    assert cited and cited <= own and len(own) == len(CMRC_DOCS)
