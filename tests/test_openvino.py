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
