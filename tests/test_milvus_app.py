"""The web chat on Milvus: started with only the URI, and two replicas sharing one server.

Real processes throughout: ``milvus-lite server`` on a free port and
``python app.py`` (tests/served_app.py) with ``QA_MILVUS_URI``, driven through
the named API endpoints with gradio_client.
"""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from milvus_server import build_seeds, running_server
from served_app import PASSWORD, running_app

pytestmark = [pytest.mark.slow, pytest.mark.milvus]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("milvus-app") / "data") as started:
        yield started


def test_two_replicas_share_one_milvus(server, tmp_path_factory, tmp_path):
    env = {"QA_MILVUS_URI": server.uri, "QA_MILVUS_COLLECTION": "replicas"}
    build_seeds(env, tmp_path / "builder")  # a replica never builds on a shared server (tests/test_milvus.py)
    with running_app(tmp_path_factory, "replica-a", env=env) as a:
        with running_app(tmp_path_factory, "replica-b", env=env) as b:
            assert not (b.index_dir / "snapshots").exists(), "replica b built nothing of its own"
            one, two = Client(a.url, verbose=False, download_files=False), Client(b.url, verbose=False,
                                                                                  download_files=False)
            assert len(two.predict(api_name="/documents")) == len(one.predict(api_name="/documents")) > 0
            messages, data, _, panel = two.predict("蒙阴交警大队的党建品牌叫什么？", [], api_name="/chat")
            assert not data["abstained"] and 'id="qa-cited"' in panel  # the whole article, read from Milvus

            article = tmp_path / "青石湾.txt"
            article.write_text(
                "青石湾社区图书角开放\n\n2024-03-02 来源：青石湾社区报\n\n"
                "青石湾社区图书角于三月二日开放，藏书一千二百册，由退休教师周明远义务管理，每周二和周六下午开放。",
                encoding="utf-8")
            report, listing, _ = one.predict([handle_file(str(article))], PASSWORD, api_name="/upload")
            assert "新增 1 篇" in report and "青石湾" in listing

            data = two.predict("青石湾社区图书角由谁管理？", [], api_name="/ask")
            assert not data["abstained"] and "周明远" in data["citations"][0]["text"]
            assert any("青石湾" in d["title"] for d in two.predict(api_name="/documents"))
