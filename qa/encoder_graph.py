"""The bundled encoder's network written as an OpenVINO graph straight from its weights, without torch.

Why: the OpenVINO network used to come from torch (``torch.export``, then
``openvino.convert_model``). That imports torch and transformers (about
460 MB a process never hands back) and builds the float32 torch network
(470 MB) only to translate it: most of a first build's 1.5 GB peak.
multilingual-e5-small is an XLM-RoBERTa encoder (BERT layers, positions
numbered from the padding id + 1), a dozen kinds of operation; this writes
them as the torch export has them: inputs ``input_ids`` and
``attention_mask`` (int64, batch and tokens dynamic), the last hidden state
out (mean pooling and unit length stay with the encoders), each weight
stored fp16 (the converted model's values, fp16-exact) behind a Convert to
f32 marked as decompression (``mark_decompression``), LayerNorm as MVN,
exact-erf GELU, ScaledDotProductAttention with the padding mask. The
weights are read from the converted folder's ``model.safetensors``,
memory-mapped, so writing the graph holds little more than that file's
235 MB. ``tests/test_encoder_graph.py`` compares the outputs with the torch
model's and the torch export's.

Used for folders whose ``config.json`` describes this architecture
(``supports``), that is the bundled conversion; any other model is exported
through torch (``qa.openvino``). The graph written here must stay the one
torch exports: both are cached in the same folder (``qa.openvino.ir_dir``),
so an export made through torch before is used as it is.
"""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError

_DTYPES = {"F16": np.float16, "F32": np.float32}
_LAYER = {  # our short name -> transformers' XLMRobertaLayer submodule
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def read_config(folder: Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


def supports(folder: Path) -> bool:
    """True for a folder holding an XLM-RoBERTa encoder this module writes exactly (the bundled conversion):
    absolute positions, exact GELU, fp16 or f32 safetensors weights."""
    try:
        config = read_config(folder)
    except (OSError, ValueError):
        return False
    return (config.get("model_type") == "xlm-roberta"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and config.get("hidden_act") == "gelu"
            and not config.get("is_decoder")
            and (Path(folder) / "model.safetensors").is_file())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as views of one memory map (nothing copied):
    an 8-byte header length, a JSON header of dtype, shape and byte offsets, then the data."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(size))
    data = np.memmap(path, np.uint8, mode="c")  # copy-on-write: writeable (OpenVINO asks), never written
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in _DTYPES:
            raise ModelError(f"{path}: tensor {name} is {entry['dtype']}, not fp16 or f32.",
                             "Delete the converted model folder and run: qa model install")
        start, end = (8 + size + int(o) for o in entry["data_offsets"])
        out[name] = data[start:end].view(_DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return out


def build(folder: Path) -> Any:
    """The network of the XLM-RoBERTa encoder in ``folder`` as an ``openvino.Model`` whose fp16 weights
    share the memory map of its ``model.safetensors`` (save or compile it, then drop it)."""
    import openvino as ov
    import openvino.opset13 as ops

    config = read_config(folder)
    weights = read_safetensors(Path(folder) / "model.safetensors")
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps, pad = float(np.float32(config["layer_norm_eps"])), int(config["pad_token_id"])

    def const(array: np.ndarray) -> Any:
        """A weight stored fp16 (exact for these weights) and run in f32, as the torch export stores it."""
        stored = ov.op.Constant(np.ascontiguousarray(array, np.float16), shared_memory=array.dtype == np.float16)
        return ops.convert(stored, "f32")

    def weight(name: str) -> Any:
        return const(weights[name])

    def linear(x: Any, name: str) -> Any:
        return ops.add(ops.matmul(x, weight(f"{name}.weight"), False, True), weight(f"{name}.bias"))

    def layer_norm(x: Any, name: str) -> Any:
        normal = ops.mvn(x, ops.constant(np.array([-1], np.int32)), True, eps, "inside_sqrt")
        return ops.add(ops.multiply(normal, weight(f"{name}.weight")), weight(f"{name}.bias"))

    ids = ops.parameter([-1, -1], np.int64, name="input_ids")
    mask = ops.parameter([-1, -1], np.int64, name="attention_mask")
    ids.output(0).set_names({"input_ids"})
    mask.output(0).set_names({"attention_mask"})

    # embeddings: word + token type 0 + position, positions numbered pad+1, pad+2, ... over non-pad tokens
    words = ops.gather(weight("embeddings.word_embeddings.weight"), ids, np.int64(0))
    token_type = const(weights["embeddings.token_type_embeddings.weight"][:1])
    real = ops.convert(ops.not_equal(ids, np.int64(pad)), "i64")
    positions = ops.add(ops.multiply(ops.cumsum(real, np.int64(1)), real), np.int64(pad))
    x = ops.add(ops.add(words, token_type),
                ops.gather(weight("embeddings.position_embeddings.weight"), positions, np.int64(0)))
    x = layer_norm(x, "embeddings.LayerNorm")

    keep = ops.unsqueeze(ops.convert(mask, "boolean"), np.array([1, 2], np.int64))  # [batch, 1, 1, tokens]
    split = ops.constant(np.array([0, 0, heads, hidden // heads], np.int64))
    order = ops.constant(np.array([0, 2, 1, 3], np.int64))
    for layer in range(int(config["num_hidden_layers"])):
        names = {short: f"encoder.layer.{layer}.{long}" for short, long in _LAYER.items()}
        q, k, v = (ops.transpose(ops.reshape(linear(x, names[s]), split, True), order) for s in "qkv")
        # the default scale, 1/sqrt(head size), which is torch's: given as an input, OpenVINO's CPU plugin
        # multiplied the keys by it in bf16 at that precision, no longer what the torch export computes
        attended = ops.scaled_dot_product_attention(q, k, v, keep, causal=False)
        merged = ops.reshape(ops.transpose(attended, order), np.array([0, 0, -1], np.int64), True)
        x = layer_norm(ops.add(linear(merged, names["ao"]), x), names["aln"])
        inner = ops.gelu(linear(x, names["fi"]), "erf")
        x = layer_norm(ops.add(linear(inner, names["fo"]), x), names["oln"])
    out = ops.result(x)
    out.output(0).get_tensor().set_names({"last_hidden_state"})
    return ov.Model([out], [ids, mask], "multilingual-e5-small")


def mark_decompression(xml: Path) -> int:
    """Mark every Convert of an fp16 weight in the saved IR ``xml`` as decompression; the count marked.

    Why: OpenVINO's CPU plugin keeps a weight so marked in its stored precision and converts it
    as it computes (as the torch export's weights are marked by ``compress_model_transformation``);
    unmarked, it folds the Convert into an f32 copy of every weight, 80 MB more per compiled network.
    The mark is runtime information that OpenVINO's Python API cannot set on a node (its
    ``rt_info`` takes strings, which are not saved), so it is written into the IR as OpenVINO
    writes it: ``<rt_info><attribute name="decompression" version="0" /></rt_info>``. The only fp16
    tensors in this graph are its weights.
    """
    tree = ElementTree.parse(xml)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        port = layer.find("input/port")
        if layer.get("type") != "Convert" or port is None or port.get("precision") != "FP16":
            continue
        info = layer.find("rt_info")
        if info is None:
            info = ElementTree.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, info)
        ElementTree.SubElement(info, "attribute", name="decompression", version="0")
        marked += 1
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return marked
