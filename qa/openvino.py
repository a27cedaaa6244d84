"""The OpenVINO side of the encoder: export the network once, derive its precision variants, compile one.

Why apart from ``qa.embed``: the export (the bundled model's graph written
from its weights by ``qa.encoder_graph``, any other model through
torch.export to OpenVINO IR), the int8 variants NNCF quantises from it, the
compile properties per precision and the torch module whose forward pass
runs in OpenVINO are one concern, used by the full encoder, by the light
question encoder and by the precision measurement (``qa.precision``). This
module imports neither ``qa.embed`` nor ``qa.precision``. torch, openvino
and nncf are imported inside the functions, so importing this module costs
nothing.

Note: this module is ``qa.openvino``; ``import openvino`` inside it still
means the OpenVINO package (imports are absolute).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ModelError
from .types import Status


def ir_dir(identity: str, cache_dir: Path, ov_version: str, torch_version: str) -> Path:
    """Where the OpenVINO export of a model lives; a new OpenVINO or torch re-exports."""
    tag = hashlib.sha256(f"{identity}|ov{ov_version}|torch{torch_version}".encode()).hexdigest()[:16]
    return Path(cache_dir) / "openvino" / tag


def export(hf_model: Any, tokenizer: Any, identity: str, cache_dir: Path, progress: Status | None = None) -> Path:
    """Export a loaded transformer to OpenVINO IR once (about half a minute) and cache it.

    For a model sentence-transformers has loaded already (a configured one);
    the bundled model goes through ``export_folder``, which needs no
    sentence-transformers.
    """
    import openvino as ov
    import torch

    target = ir_dir(identity, cache_dir, ov.get_version(), torch.__version__)
    if (target / "model.xml").is_file():
        return target / "model.xml"
    if progress:
        progress("exporting the model to OpenVINO (once, about a minute)")
    sample = tokenizer(list(SAMPLE), padding=True, return_tensors="pt")
    _save(hf_model, sample["input_ids"], sample["attention_mask"], target)
    return target / "model.xml"


SAMPLE = ("passage: 示例文本 example", "query: 问题")  # the texts the export is traced with


def export_folder(folder: Path, ids: Any, identity: str, cache_dir: Path, progress: Status | None = None) -> Path:
    """The OpenVINO network of the transformer saved in ``folder``, written once and cached.

    The bundled model (an XLM-RoBERTa encoder, ``encoder_graph.supports``)
    is written straight from its weights by ``qa.encoder_graph``: no torch,
    a few seconds, the file's 235 MB mapped at most. Any other folder is
    exported through torch: transformers loads the network alone (not
    sentence-transformers, whose import and float32 copy would stay for
    nothing), ``ids(text)`` (the model's tokenizer) gives the sample, and
    the torch model is freed before this returns. Either way a build that
    finds the export imports no torch at all.

    The cache key keeps torch's version (read from its metadata, not
    imported) although the bundled graph no longer comes from torch: torch is
    installed with qa, and an export made through torch before and the graph
    written here are the same network (``tests/test_encoder_graph.py``), so
    either may answer from that folder.
    """
    import importlib.metadata

    import openvino as ov

    from . import encoder_graph

    target = ir_dir(identity, cache_dir, ov.get_version(), importlib.metadata.version("torch"))
    if (target / "model.xml").is_file():
        return target / "model.xml"
    if encoder_graph.supports(folder):
        if progress:
            progress("writing the model's OpenVINO network (once, a few seconds)")
        ir = encoder_graph.build(folder)
        _write(ir, target, encoder_graph.mark_decompression)
        del ir
        release_memory()
        return target / "model.xml"
    if progress:
        progress("exporting the model to OpenVINO (once, about a minute)")
    import torch
    from transformers import AutoModel

    rows = [list(ids(text)) for text in SAMPLE]
    width = max(map(len, rows))
    pad = int(json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("pad_token_id") or 0)
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.int64)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.int64)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True)
    _save(model, input_ids, mask, target)
    del model
    release_memory()
    return target / "model.xml"


def _save(hf_model: Any, input_ids: Any, attention_mask: Any, target: Path) -> None:
    """torch.export to OpenVINO IR, weights stored fp16 (they are fp16-exact) and run in fp32.

    torch.export is used because TorchScript tracing fails on transformers 5's
    mask code. The fp16 compression is done in place on the converted model
    (whose constants share the torch weights) rather than by ``save_model``,
    which compresses a copy: that copy was 180 MB more at the build's peak.
    """
    import openvino as ov
    import torch
    from openvino._offline_transformations import compress_model_transformation

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    dims = {
        0: torch.export.Dim("batch"),
        1: torch.export.Dim("tokens", max=int(hf_model.config.max_position_embeddings)),
    }
    with torch.no_grad():
        program = torch.export.export(Wrapped(hf_model.eval()), (input_ids, attention_mask),
                                      dynamic_shapes={"input_ids": dims, "attention_mask": dims})
        ir = ov.convert_model(program)
    del program
    compress_model_transformation(ir)
    _write(ir, target)


def _write(ir: Any, target: Path, finish: Callable[[Path], Any] | None = None) -> None:
    """Save ``ir`` as ``target/model.xml`` (its weights as they are: fp16 ones stay fp16), written
    beside it, ``finish(xml)`` applied, and renamed into place, so an interrupted export never
    leaves a half IR to be trusted."""
    import openvino as ov

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        ov.save_model(ir, str(tmp / "model.xml"), compress_to_fp16=False)
        if finish is not None:
            finish(tmp / "model.xml")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the system (glibc keeps it otherwise), so a
    step's peak is not stacked on the last one's leftovers."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused by the process all the same
        pass


_OV_TYPE = {"f32": "f32", "bf16": "bf16", "int8": "f32", "int8-static": "f32"}  # int8: int8 weights in the IR


def compile_config(precision_name: str, threads: int, streams: int = 0) -> dict:
    """Compile properties for a precision. f32 is asked for explicitly: on a CPU with native
    bf16 OpenVINO would otherwise pick bf16 on its own, unmeasured."""
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": _OV_TYPE[precision_name]}
    if streams:
        config.update(PERFORMANCE_HINT="THROUGHPUT" if streams > 1 else "LATENCY", NUM_STREAMS=streams)
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
    if precision_name == "int8":  # int8 weights pay only with the activations quantised on the fly too
        config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = 32
    return config


def variant_xml(xml: Path, precision_name: str, calibration: list[np.ndarray] | None = None) -> Path:
    """The IR a precision runs: f32 and bf16 run the export itself; int8 variants are quantised
    from it by NNCF once and cached beside it (``int8``: weights only; ``int8-static``: weights
    and activations, calibrated on ``calibration`` - measured by the benchmarks, never adopted)."""
    if not precision_name.startswith("int8"):
        return xml
    target = xml.parent / precision_name
    if (target / "model.xml").is_file():
        return target / "model.xml"
    try:
        import nncf
    except ImportError:
        raise ModelError("QA_PRECISION=int8 needs the nncf package, which qa does not install.",
                         'Install it (pip install nncf "torch==2.13.0") or set QA_PRECISION=auto.') from None
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    if precision_name == "int8":
        model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_SYM)
    else:
        data = nncf.Dataset(calibration or [], lambda ids: (ids, np.ones_like(ids)))
        model = nncf.quantize(model, data, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration or []))
    tmp = Path(tempfile.mkdtemp(prefix=".quantise-", dir=xml.parent))
    try:
        ov.save_model(model, str(tmp / "model.xml"))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "model.xml"


def compile_variant(xml: Path, precision_name: str, threads: int, streams: int = 0, core: Any = None,
                    calibration: list[np.ndarray] | None = None, read: dict[Path, Any] | None = None) -> Any:
    """The export compiled for the CPU at a precision (its variant made first if need be);
    ``core``: an ``openvino.Core`` with properties already set, else a fresh one.

    ``read``: the IRs already read, by path, for compiling several precisions of one file (the
    precision measurement): each variant is then compiled from the one read model, so its weights are
    mapped once. Read per compile, the word embeddings (192 MB of fp16, mapped from the file and
    touched row by row as texts run) counted once per compiled precision."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    path = variant_xml(xml, precision_name, calibration)
    source: Any = str(path)
    if read is not None:
        if path not in read:
            read[path] = core.read_model(str(path))
        source = read[path]
    return core.compile_model(source, "CPU", compile_config(precision_name, threads, streams))


def forward_module(config: Any, compiled: Any, streams: int) -> Any:
    """The torch module that stands in for the transformer: its forward pass runs in OpenVINO.

    A batch is run as one unpadded text per infer request, one request per
    core in parallel: measured faster than one padded batch spread over the
    cores (benchmarks/encoder_speed.py). ``streams=1`` (``QA_OV_STREAMS=1``)
    gives the single-request variant for comparison.
    """
    import openvino as ov
    import torch

    class OpenVINOForward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config
            self.queue = ov.AsyncInferQueue(compiled, streams)
            self.lock = threading.Lock()  # the web chat may encode from several threads

        def forward(self, input_ids: Any = None, attention_mask: Any = None, **_: Any) -> dict:
            ids, mask = input_ids.numpy(), attention_mask.numpy()
            hidden = np.zeros((*ids.shape, int(self.config.hidden_size)), np.float32)
            rows = range(len(ids)) if streams > 1 else [slice(None)]

            def done(request: Any, row: Any) -> None:
                keep = mask[row] > 0 if streams > 1 else slice(None)
                hidden[row, keep] = request.get_output_tensor(0).data[0 if streams > 1 else slice(None)]

            with self.lock:
                self.queue.set_callback(done)
                for row in rows:
                    keep = mask[row] > 0 if streams > 1 else slice(None)
                    feed = (ids[row][keep][None], mask[row][keep][None]) if streams > 1 else (ids, mask)
                    self.queue.start_async({0: feed[0], 1: feed[1]}, row)
                self.queue.wait_all()
            return {"last_hidden_state": torch.from_numpy(hidden)}

    return OpenVINOForward()
