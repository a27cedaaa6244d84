"""The OpenVINO side of the encoder that needs no model: where exports live and how a precision compiles."""

from __future__ import annotations

from pathlib import Path

from qa import openvino


def test_an_export_is_redone_for_a_new_openvino_or_torch():
    base = openvino.ir_dir("model-a", Path("/cache"), "2025.1", "2.13.0")
    assert base.parent == Path("/cache") / "openvino"
    assert base == openvino.ir_dir("model-a", Path("/cache"), "2025.1", "2.13.0")
    others = {openvino.ir_dir("model-b", Path("/cache"), "2025.1", "2.13.0"),
              openvino.ir_dir("model-a", Path("/cache"), "2025.2", "2.13.0"),
              openvino.ir_dir("model-a", Path("/cache"), "2025.1", "2.14.0")}
    assert base not in others and len(others) == 3


def test_each_precision_is_asked_for_explicitly():
    """f32 is named even though it is OpenVINO's own default, which a CPU with bf16 would override."""
    f32 = openvino.compile_config("f32", threads=2)
    assert f32 == {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    assert openvino.compile_config("bf16", 2)["INFERENCE_PRECISION_HINT"] == "bf16"
    int8 = openvino.compile_config("int8", 2)  # int8 weights in the IR, activations quantised on the fly
    assert int8["INFERENCE_PRECISION_HINT"] == "f32" and int8["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == 32


def test_streams_run_requests_in_parallel():
    assert openvino.compile_config("f32", 4, streams=4) == {
        "INFERENCE_NUM_THREADS": 4, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT",
        "NUM_STREAMS": 4}
    assert openvino.compile_config("f32", 4, streams=1)["PERFORMANCE_HINT"] == "LATENCY"


def test_f32_and_bf16_run_the_export_itself(tmp_path):
    xml = tmp_path / "model.xml"
    assert openvino.variant_xml(xml, "f32") == xml and openvino.variant_xml(xml, "bf16") == xml
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "model.xml").write_text("<net/>")  # an int8 variant made earlier is reused as it is
    assert openvino.variant_xml(xml, "int8") == tmp_path / "int8" / "model.xml"


def _tiny_ir(tmp_path: Path) -> Path:
    """x @ W^T with W stored fp16 behind a Convert, saved as ``qa.encoder_graph``'s IR is (marked)."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    from qa import encoder_graph

    weight = np.arange(12, dtype=np.float16).reshape(3, 4) / 8
    x = ops.parameter([-1, 4], np.float32, name="x")
    out = ops.matmul(x, ops.convert(ov.op.Constant(weight), "f32"), False, True)
    openvino._write(ov.Model([ops.result(out)], [x]), tmp_path / "ir", encoder_graph.mark_decompression)
    return tmp_path / "ir" / "model.xml"


def test_fp16_weights_are_marked_as_decompression(tmp_path):
    """The CPU plugin keeps marked fp16 weights as they are; OpenVINO reads the mark back from the IR."""
    import numpy as np
    import openvino as ov

    xml = _tiny_ir(tmp_path)
    model = ov.Core().read_model(str(xml))
    converts = [n for n in model.get_ordered_ops() if n.get_type_name() == "Convert"]
    assert len(converts) == 1 and "decompression_0" in converts[0].get_rt_info().keys()
    compiled = openvino.compile_variant(xml, "f32", threads=1)
    x = np.ones((1, 4), np.float32)
    assert np.allclose(compiled({0: x})[0], x @ (np.arange(12, dtype=np.float32).reshape(3, 4) / 8).T)
    assert not list((tmp_path / "ir").glob(".export-*")) and not list(tmp_path.glob(".export-*"))


def test_precisions_compiled_from_one_read_share_it(tmp_path):
    """The precision measurement compiles f32 and bf16 from one read of the export (its weights mapped once)."""
    xml = _tiny_ir(tmp_path)
    read: dict = {}
    first = openvino.compile_variant(xml, "f32", threads=1, read=read)
    model = read[xml]
    second = openvino.compile_variant(xml, "bf16", threads=1, read=read)
    assert list(read) == [xml] and read[xml] is model and first is not second


def test_safetensors_are_read_as_views_of_the_file(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from qa import encoder_graph

    tensors = {"a.weight": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.array([1.5, -2], np.float32)}
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    read = encoder_graph.read_safetensors(tmp_path / "model.safetensors")
    assert set(read) == set(tensors)
    for name, array in tensors.items():
        assert read[name].dtype == array.dtype and np.array_equal(read[name], array)
        assert isinstance(read[name], np.memmap)  # nothing copied
