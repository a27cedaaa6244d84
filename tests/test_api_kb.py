"""The API over several knowledge bases (qa/web/api.py with qa/kb.py), in-process with the tiny real model.

One deployment, four bases: ``default`` (the seeds), ``cmrc`` (public) and two private ones,
``secret`` and ``other``, each with CMRC articles of its own. Every /v1 and /api route is tried
with no key, text that is no key, a wrong key, ``QA_API_KEY``, the other private base's key and
the right key, on an open API (no ``QA_API_KEY``) and a keyed one. Isolation is proved by asking
each base, through ``model`` and through ``kb``, its own questions and the others': every
citation comes from its own documents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa.config import Settings
from qa.embed import load_encoder
from qa.kb import Bases
from qa.web.api import Gate, build_api

ROOT = Path(__file__).resolve().parents[1]
CMRC = ROOT / "eval" / "cmrc2018-trial"
DEPLOYMENT_KEY = "deploy-key-5d1e"
SEED_QUESTION = "蒙阴交警大队的党建品牌叫什么？"
ARTICLES = {"cmrc": ["cmrc-trial-0001.txt", "cmrc-trial-0002.txt"],
            "secret": ["cmrc-trial-0003.txt", "cmrc-trial-0004.txt"],
            "other": ["cmrc-trial-0005.txt"]}
UNKNOWN = "zznone"  # a name no base has, as long as "secret": refusals compare byte for byte


def questions_of(articles: list[str]) -> list[str]:
    rows = [json.loads(line) for line in (CMRC / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [r["question"] for r in rows if r["doc"] in articles][:3]


class Deployment:
    """The bases, their keys, their documents (doc_id -> title) and their questions."""

    def __init__(self, root: Path, model: Path, seeds: Path) -> None:
        self.settings = Settings.load(index_dir=root / "index", model=str(model))
        self.bases = Bases(self.settings, encoder=load_encoder(self.settings))
        self.keys: dict[str, str] = {}
        self.bases.server_open("default").build([seeds])
        for name, articles in ARTICLES.items():
            _, key = self.bases.create(name, private=name != "cmrc")
            if key:
                self.keys[name] = key
            folder = root / name
            folder.mkdir()
            for article in articles:
                shutil.copy(CMRC / "docs" / article, folder / article)
            self.bases.server_open(name).build([folder])
        self.docs = {name: {i.doc_id: i.title for i in self.bases.server_open(name).documents()}
                     for name in ("default", *ARTICLES)}
        self.questions = {"default": [SEED_QUESTION, "海陵巡特警大队党总支有多少名党员？"],
                          **{name: questions_of(articles) for name, articles in ARTICLES.items()}}

    def client(self, api_keys: str = "", host: str = "10.9.0.1") -> TestClient:
        """An API on these bases, as ``serve`` builds it (its own ``Keys`` throttle); ``host``: the caller."""
        settings = self.settings.with_(api_key=api_keys)
        return TestClient(build_api(self.bases, settings, Gate(4, 8)), client=(host, 40000))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, tiny_model_dir, seeds_dir) -> Deployment:
    return Deployment(tmp_path_factory.mktemp("api-kb"), tiny_model_dir, seeds_dir)


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def user(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


def routes(deployment: Deployment, name: str) -> list[tuple[str, str, dict | None]]:
    """Every /v1 and /api route, naming base ``name`` (method, path, JSON body)."""
    doc_id = next(iter(deployment.docs["secret"]))  # a real document id of the private base
    question = deployment.questions["secret"][0]
    return [
        ("GET", f"/v1/models/{name}", None),
        ("POST", "/v1/chat/completions", {"model": name, "messages": user(question)}),
        ("POST", "/v1/chat/completions", {"model": name, "messages": user(question), "stream": True}),
        ("POST", "/api/ask", {"kb": name, "question": question}),
        ("POST", "/api/search", {"kb": name, "query": question}),
        ("GET", f"/api/documents?kb={name}", None),
        ("GET", f"/api/documents/{doc_id}?kb={name}", None),
    ]


def call(client: TestClient, method: str, path: str, body: dict | None, key: str | None):
    return client.request(method, path, json=body, headers=bearer(key))


def elsewhere(client: TestClient, host: str) -> TestClient:
    """The same API (the same key throttle), called from another address."""
    return TestClient(client.app, client=(host, 40000))


def error_of(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


def model_ids(client: TestClient, key: str | None) -> list[str]:
    response = client.get("/v1/models", headers=bearer(key))
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


# -- who reads what ------------------------------------------------------------------------------

def test_models_list_the_bases_each_key_reads(deployment):
    keys = deployment.keys
    opened, keyed = deployment.client(), deployment.client(DEPLOYMENT_KEY)
    for client in (opened, keyed):
        assert model_ids(client, keys["secret"]) == ["default", "cmrc", "secret"]
        assert model_ids(client, keys["other"]) == ["default", "cmrc", "other"]
    assert model_ids(opened, None) == model_ids(opened, "unused") == ["default", "cmrc"]
    assert model_ids(keyed, DEPLOYMENT_KEY) == ["default", "cmrc"]
    assert error_of(keyed.get("/v1/models"), 401)["code"] == "missing_api_key"
    assert error_of(keyed.get("/v1/models", headers=bearer("unused")), 401)["code"] == "invalid_api_key"
    assert error_of(opened.get("/v1/models", headers=bearer("qakb-not-a-key")), 401)["code"] == "invalid_api_key"
    created = opened.get("/v1/models/secret", headers=bearer(keys["secret"])).json()
    assert created["id"] == "secret" and created["created"] > 0  # the base's creation time


@pytest.mark.parametrize("api_keys", ["", DEPLOYMENT_KEY])
def test_a_private_base_is_unreachable_without_its_key_through_every_route(deployment, api_keys):
    """No key, any text, a wrong key, QA_API_KEY, the other private base's key: each route naming
    ``secret`` answers exactly what it answers for a name no base has, and nothing of the base leaks."""
    client = deployment.client(api_keys, host="10.9.1.1")
    secret_words = ["secret", *deployment.docs["secret"], *deployment.docs["secret"].values()]
    credentials = [None, "unused", DEPLOYMENT_KEY, deployment.keys["other"]]
    for n, key in enumerate(credentials):
        for r, ((method, path, body), (_, unknown_path, unknown_body)) in enumerate(
                zip(routes(deployment, "secret"), routes(deployment, UNKNOWN), strict=True)):
            caller = elsewhere(client, f"10.9.{10 + n}.{r}")  # two wrong keys at most per address: no lockout
            refused = call(caller, method, path, body, key)
            unknown = call(caller, method, unknown_path, unknown_body, key)
            assert refused.status_code == unknown.status_code and refused.status_code in (400, 401), refused.text
            assert refused.content == unknown.content.replace(UNKNOWN.encode(), b"secret"), (key, path)
            assert not any(word in unknown.text for word in secret_words), (key, path, unknown.text)
            if refused.status_code == 400:
                error = refused.json()["error"]
                assert error["code"] in ("model_not_found", "kb_not_found") and error["param"] in ("model", "kb")
    # a wrong key is refused as one, without a word about bases (after the others: it is charged)
    for r, (method, path, body) in enumerate(routes(deployment, "secret")):
        wrong = call(elsewhere(client, f"10.9.20.{r}"), method, path, body, "qakb-" + "x" * 43)
        assert error_of(wrong, 401)["code"] == "invalid_api_key" and "secret" not in wrong.text
    # the private base's document is not reachable through another base either
    doc_id = next(iter(deployment.docs["secret"]))
    for kb, key in (("default", None), ("cmrc", DEPLOYMENT_KEY), ("other", deployment.keys["other"])):
        response = client.get(f"/api/documents/{doc_id}?kb={kb}",
                              headers=bearer(key if key or not api_keys else DEPLOYMENT_KEY))
        assert error_of(response, 404)["code"] == "document_not_found"
        listed = client.get(f"/api/documents?kb={kb}", headers=bearer(key or (DEPLOYMENT_KEY if api_keys else None)))
        assert listed.status_code == 200 and doc_id not in listed.text
    # and with its key, every route answers
    for method, path, body in routes(deployment, "secret"):
        response = call(client, method, path, body, deployment.keys["secret"])
        assert response.status_code == 200, (path, response.text)


def test_a_base_key_alone_is_enough_even_with_qa_api_key_and_opens_the_public_bases(deployment):
    client = deployment.client(DEPLOYMENT_KEY, host="10.9.2.1")
    key = deployment.keys["secret"]
    for kb in ("secret", "default", "cmrc"):
        asked = client.post("/api/ask", json={"kb": kb, "question": deployment.questions[kb][0]}, headers=bearer(key))
        assert asked.status_code == 200 and asked.json()["citations"], (kb, asked.text)
    refused = client.post("/api/ask", json={"kb": "other", "question": "x"}, headers=bearer(key))
    assert error_of(refused, 400)["code"] == "kb_not_found"
    assert "other" not in refused.json()["error"]["message"].split("可用：")[1]  # lists what this key reads


def test_wrong_keys_lock_out_the_guesser_even_for_a_base_key(deployment):
    client = deployment.client(host="10.9.3.1")  # an open API: only text shaped like a base key is a wrong key
    statuses = [client.get("/v1/models", headers=bearer(f"qakb-guess{n}")).status_code for n in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429, statuses
    locked = client.get("/v1/models", headers=bearer(deployment.keys["secret"]))
    assert error_of(locked, 429)["code"] == "too_many_failed_keys" and "retry-after" in locked.headers
    assert model_ids(elsewhere(client, "10.9.3.2"), deployment.keys["secret"])[-1] == "secret"


def test_a_new_key_revokes_the_old_one_at_once(deployment):
    client = deployment.client(DEPLOYMENT_KEY, host="10.9.4.1")
    _, old = deployment.bases.create("brief", private=True)
    try:
        assert "brief" in model_ids(client, old)
        new = Bases(deployment.settings).new_key("brief")  # as `qa kb key brief` in another process
        assert error_of(client.get("/v1/models", headers=bearer(old)), 401)["code"] == "invalid_api_key"
        assert "brief" in model_ids(client, new)
    finally:
        deployment.bases.delete("brief")
    assert error_of(client.get("/v1/models", headers=bearer(new)), 401)["code"] == "invalid_api_key"


# -- isolation -------------------------------------------------------------------------------------

def test_each_base_answers_only_from_its_own_documents_through_model_and_kb(deployment):
    client = deployment.client(DEPLOYMENT_KEY, host="10.9.5.1")
    everyone = [q for qs in deployment.questions.values() for q in qs]
    for name, own in deployment.docs.items():
        key = deployment.keys.get(name, DEPLOYMENT_KEY)
        for question in everyone:  # its own questions and every other base's
            chat = client.post("/v1/chat/completions", json={"model": name, "messages": user(question)},
                               headers=bearer(key)).json()
            ask = client.post("/api/ask", json={"kb": name, "question": question}, headers=bearer(key)).json()
            search = client.post("/api/search", json={"kb": name, "query": question, "k": 3}, headers=bearer(key))
            assert chat["model"] == name
            for cited in (chat["citations"], ask["citations"], search.json()["citations"]):
                assert cited and {c["doc_id"] for c in cited} <= set(own), (name, question)
            assert all(title not in chat["choices"][0]["message"]["content"]
                       for other, docs in deployment.docs.items() if other != name for title in docs.values())
        for question in deployment.questions[name]:  # and its own questions come back with its own answers
            ask = client.post("/api/ask", json={"kb": name, "question": question}, headers=bearer(key)).json()
            assert ask["citations"][0]["doc_id"] in own
        listed = client.get(f"/api/documents?kb={name}", headers=bearer(key)).json()
        assert {d["doc_id"] for d in listed} == set(own)
        one = client.get(f"/api/documents/{next(iter(own))}?kb={name}", headers=bearer(key)).json()
        assert one["title"] == own[one["doc_id"]] and one["text"]


def test_default_is_asked_when_model_and_kb_are_left_out(deployment):
    client = deployment.client(host="10.9.6.1")
    for model in ({}, {"model": None}, {"model": ""}, {"model": "default"}):
        reply = client.post("/v1/chat/completions", json={**model, "messages": user(SEED_QUESTION)}).json()
        cited = {c["doc_id"] for c in reply["citations"]}
        assert reply["model"] == "default" and cited and cited <= set(deployment.docs["default"])
    asked = client.post("/api/ask", json={"question": SEED_QUESTION}).json()
    assert "情满崮乡" in json.dumps(asked, ensure_ascii=False)
    assert {d["doc_id"] for d in client.get("/api/documents").json()} == set(deployment.docs["default"])
    refused = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": user(SEED_QUESTION)})
    assert error_of(refused, 400)["message"] == "没有名为 'gpt-4o' 的模型（知识库）；可用：default, cmrc。"


def test_a_stream_names_its_base_and_joins_to_the_plain_reply(deployment):
    client = deployment.client(DEPLOYMENT_KEY, host="10.9.7.1")
    key, question = deployment.keys["secret"], deployment.questions["secret"][0]
    body = {"model": "secret", "messages": user(question)}
    plain = client.post("/v1/chat/completions", json=body, headers=bearer(key)).json()
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True,
                                                           "stream_options": {"include_usage": True}},
                           headers=bearer(key))
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["model"] for c in chunks} == {"secret"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    last = next(c for c in reversed(chunks) if c["choices"])
    assert last["citations"] == plain["citations"] and {c["doc_id"] for c in last["citations"]} <= set(
        deployment.docs["secret"])
