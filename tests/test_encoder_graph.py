"""The bundled model's OpenVINO network written from its weights (qa/encoder_graph.py) is the network torch gives.

Compared on real text (seed paragraphs with the passage prompt, public questions with the query
prompt) against the float32 torch model itself and against the export torch.export made of it,
in f32 and bf16, one text at a time (as the encoders run) and in a padded batch (as
``QA_OV_STREAMS=1`` runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qa import convert, encoder_graph, openvino
from qa.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder() -> Path:
    return convert.install_bundled(Settings.load().cache_dir)


@pytest.fixture(scope="module")
def direct_xml(folder, tmp_path_factory) -> Path:
    return openvino.export_folder(folder, None, "direct", tmp_path_factory.mktemp("direct"))


@pytest.fixture(scope="module")
def torch_model(folder):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder), local_files_only=True).eval()


@pytest.fixture(scope="module")
def torch_xml(torch_model, tmp_path_factory) -> Path:
    """The export as qa made it before the graph was written directly (torch.export, then OpenVINO)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(Path(torch_model.name_or_path)))
    sample = tokenizer(list(openvino.SAMPLE), padding=True, return_tensors="pt")
    target = tmp_path_factory.mktemp("torch") / "ir"
    openvino._save(torch_model, sample["input_ids"], sample["attention_mask"], target)
    return target / "model.xml"


@pytest.fixture(scope="module")
def texts(folder, seeds_dir, eval_rows) -> list[list[int]]:
    """Token ids of real passages and questions with their prompts, the longest truncated at 512."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=512)
    paragraphs = [line.strip() for path in sorted(seeds_dir.glob("*.txt"))
                  for line in path.read_text(encoding="utf-8").splitlines() if len(line.strip()) >= 80]
    passages = ["passage: " + p for p in paragraphs[::3]] + ["passage: " + "长" * 3000]
    queries = ["query: " + r["question"] for r in eval_rows[::4]]
    return [tokenizer.encode(t).ids for t in passages + queries]


def _unit(hidden: np.ndarray) -> np.ndarray:
    vector = hidden.mean(axis=0)
    return vector / np.linalg.norm(vector)


def _run(xml: Path, precision: str, rows: list[list[int]]) -> tuple[list[np.ndarray], np.ndarray]:
    """Last hidden states one text at a time, and unit vectors (mean pooled) of the same texts."""
    compiled = openvino.compile_variant(xml, precision, threads=2)
    hidden = [compiled({0: np.asarray([r], np.int64), 1: np.ones((1, len(r)), np.int64)})[0][0] for r in rows]
    return hidden, np.stack([_unit(h) for h in hidden])


def _padded(rows: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(map(len, rows))
    ids = np.asarray([r + [pad] * (width - len(r)) for r in rows], np.int64)
    return ids, (np.arange(width)[None, :] < np.asarray([len(r) for r in rows])[:, None]).astype(np.int64)


def test_the_ir_has_the_torch_exports_inputs_output_and_weights(direct_xml, torch_xml):
    import openvino as ov

    core = ov.Core()
    ours, theirs = core.read_model(str(direct_xml)), core.read_model(str(torch_xml))
    describe = lambda ports: [(sorted(p.get_names())[:1], str(p.get_partial_shape()), str(p.get_element_type()))  # noqa: E731
                              for p in ports]
    assert describe(ours.inputs) == describe(theirs.inputs)
    assert [(str(p.get_partial_shape()), str(p.get_element_type())) for p in ours.outputs] == \
           [(str(p.get_partial_shape()), str(p.get_element_type())) for p in theirs.outputs]

    def weights(model) -> tuple[list, int]:
        converts = [n for n in model.get_ordered_ops() if n.get_type_name() == "Convert"
                    and n.input_value(0).get_node().get_type_name() == "Constant"]
        shapes = sorted(tuple(n.get_output_shape(0)) for n in converts
                        if str(n.input_value(0).get_element_type()) == "<Type: 'float16'>")
        marked = sum("decompression_0" in n.get_rt_info().keys() for n in converts)
        return shapes, marked

    (our_shapes, our_marks), (their_shapes, their_marks) = weights(ours), weights(theirs)
    squeeze = lambda shapes: sorted(tuple(d for d in s if d != 1) for s in shapes)  # noqa: E731 - biases: [384] or [1, 1, 384]
    our_table = [s for s in our_shapes if s[0] == 1]  # the token type row the direct graph adds as a constant
    assert squeeze([s for s in our_shapes if s not in our_table]) == \
           squeeze([s for s in their_shapes if s != (2, 384)])
    assert our_marks == len(our_shapes) and their_marks == len(their_shapes)  # every fp16 weight decompressed


def test_f32_gives_the_torch_models_hidden_states(direct_xml, torch_model, texts):
    """The same network: in f32 the hidden states agree to float rounding, alone and in a padded batch."""
    import torch

    hidden, vectors = _run(direct_xml, "f32", texts)
    worst = 0.0
    with torch.no_grad():
        for row, ours, vector in zip(texts, hidden, vectors, strict=True):
            theirs = torch_model(input_ids=torch.tensor([row])).last_hidden_state[0].numpy()
            worst = max(worst, float(np.abs(ours - theirs).max()))
            assert np.abs(_unit(theirs) - vector).max() < 1e-5
        assert worst < 5e-5, worst

        batch = texts[:6]
        ids, mask = _padded(batch, torch_model.config.pad_token_id)
        compiled = openvino.compile_variant(direct_xml, "f32", threads=2)
        ours_b = compiled({0: ids, 1: mask})[0]
        theirs_b = torch_model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
        for i, row in enumerate(batch):  # the real tokens; padding positions are never pooled
            assert np.abs(ours_b[i, : len(row)] - theirs_b[i, : len(row)].numpy()).max() < 5e-5
            assert np.abs(ours_b[i, : len(row)] - hidden[i]).max() < 5e-5  # padding changes nothing


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_outputs_equal_the_torch_exports(direct_xml, torch_xml, texts, precision):
    """Compiled, the two IRs compute the same: in f32 the hidden states to 1e-5, and the encoders' mean pooled unit
    vectors to 1e-5 in f32 and within bf16's rounding in bf16 (the bound tests/test_embed.py holds the two
    encoders to; on an AMD EPYC with avx512_bf16 both were bitwise equal, OpenVINO 2026.4)."""
    our_hidden, ours = _run(direct_xml, precision, texts)
    their_hidden, theirs = _run(torch_xml, precision, texts)
    if precision == "f32":
        assert max(float(np.abs(a - b).max()) for a, b in zip(our_hidden, their_hidden, strict=True)) < 1e-5
        assert np.abs(ours - theirs).max() < 1e-5
    else:
        assert np.abs(ours - theirs).max() < 2e-3
        assert np.sum(ours * theirs, axis=1).min() > 0.9995


def test_writing_the_graph_imports_no_torch(folder, tmp_path):
    code = ("import sys; from pathlib import Path; from qa import openvino; "
            f"xml = openvino.export_folder(Path({str(folder)!r}), None, 'x', Path({str(tmp_path)!r})); "
            "print(xml.is_file(), 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_only_the_architecture_it_writes_is_supported(folder, tmp_path):
    assert encoder_graph.supports(folder)
    other = tmp_path / "other"
    other.mkdir()
    config = encoder_graph.read_config(folder)
    (other / "model.safetensors").write_bytes(b"")
    for change in ({"model_type": "bert"}, {"position_embedding_type": "relative_key"}, {"hidden_act": "gelu_new"}):
        (other / "config.json").write_text(json.dumps({**config, **change}), encoding="utf-8")
        assert not encoder_graph.supports(other)
    assert not encoder_graph.supports(tmp_path / "missing")
