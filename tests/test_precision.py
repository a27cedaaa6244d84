"""The encoder's inference precision: CPU features, the decision rule, its cache, and fidelity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import precision
from qa.config import Settings
from qa.errors import UsageError

# /proc/cpuinfo as three kinds of machine write it (trimmed to the fields that matter)
EPYC_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni avx512_bitalg

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni avx512_bitalg
"""
ZEN3_AVX2 = """processor\t: 0
model name\t: AMD EPYC 7R13 Processor
flags\t\t: fpu sse2 avx avx2 fma bmi2 sha_ni vaes vpclmulqdq
"""
SAPPHIRE_AMX = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
"""

NO_NNCF = lambda module: False  # noqa: E731 - int8 needs nncf, not a product dependency
WITH_NNCF = lambda module: True  # noqa: E731


def figures(cos: float = 0.99999, speedup: float = 1.8, cos_q: float | None = None) -> dict:
    return {"cos_passages_min": cos, "cos_queries_min": cos if cos_q is None else cos_q, "speedup": speedup}


def refuse(candidates):  # a measurement that must not happen
    raise AssertionError(f"measured {candidates} where nothing should be measured")


# -- CPU features ------------------------------------------------------------------------
def test_cpuinfo_gives_model_flags_and_native_precisions():
    cpu = precision.parse_cpuinfo(EPYC_BF16)
    assert cpu.model == "AMD EPYC 9R14 96-Core Processor"
    assert cpu.shown() == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"]
    assert cpu.native() == ["bf16", "int8"]
    amx = precision.parse_cpuinfo(SAPPHIRE_AMX)
    assert amx.native() == ["bf16", "int8"] and {"amx_bf16", "amx_int8", "amx_tile"} <= set(amx.shown())


def test_cpus_without_native_support_offer_nothing():
    zen3 = precision.parse_cpuinfo(ZEN3_AVX2)
    assert zen3.model == "AMD EPYC 7R13 Processor" and zen3.shown() == ["avx2"] and zen3.native() == []
    arm = precision.parse_cpuinfo(ARM)
    assert arm.native() == [] and "asimd" in arm.flags and arm.model == "unknown CPU"
    assert precision.parse_cpuinfo("").native() == []
    assert precision.read_cpu("/nonexistent/cpuinfo").native() == []


def test_int8_is_a_candidate_only_where_native_and_nncf_is_installed():
    cpu = precision.parse_cpuinfo(EPYC_BF16)
    assert precision.candidates(cpu, NO_NNCF) == (["bf16"], "int8 is native but needs nncf (not installed)")
    assert precision.candidates(cpu, WITH_NNCF)[0] == ["bf16", "int8"]
    assert precision.candidates(precision.parse_cpuinfo(ZEN3_AVX2), WITH_NNCF)[0] == []


# -- the rule ----------------------------------------------------------------------------
def test_pick_adopts_only_a_faithful_candidate_that_pays():
    assert precision.pick({"bf16": figures()})[0] == "bf16"
    assert precision.pick({"bf16": figures(speedup=1.10)})[0] == "f32"  # faithful, does not pay
    assert precision.pick({"bf16": figures(cos=0.9990)})[0] == "f32"  # pays, unfaithful passages
    assert precision.pick({"bf16": figures(cos_q=0.9994)})[0] == "f32"  # queries count as much
    assert precision.pick({"int8": {"error": "ModelError: needs nncf"}})[0] == "f32"
    choice, reason = precision.pick({"bf16": figures(cos=0.99999, speedup=1.9),
                                     "int8-static": figures(cos=0.99865, speedup=2.2)})
    assert choice == "bf16" and "int8-static min cosine 0.99865" in reason


def test_pick_settles_candidates_within_noise_by_fidelity():
    near = {"bf16": figures(cos=0.99999, speedup=1.7), "int8": figures(cos=0.99983, speedup=1.85)}
    assert precision.pick(near)[0] == "bf16"
    far = {"bf16": figures(cos=0.99999, speedup=1.5), "int8": figures(cos=0.99983, speedup=2.0)}
    assert precision.pick(far)[0] == "int8"


def test_speedup_is_the_median_of_paired_rounds_and_split_rounds_are_inconclusive():
    f32 = [2.0, 2.0, 4.0, 2.0, 2.0]
    fast = [1.0, 1.6, 2.0, 1.0, 2.1]
    assert precision.speedup(f32, fast) == {"speedup": 2.0, "ratios": [0.952, 1.25, 2.0, 2.0, 2.0]}
    assert not precision.inconclusive(f32, fast)  # four of five above 1.15
    assert precision.inconclusive([2.0] * 5, [1.0, 1.0, 1.0, 2.0, 2.0])  # three above, two below
    assert not precision.inconclusive([2.0] * 5, [2.0] * 5)


# -- the decision and its cache ----------------------------------------------------------
def test_without_native_support_f32_is_chosen_without_measuring(tmp_path):
    cpu = precision.parse_cpuinfo(ZEN3_AVX2)
    decision = precision.choose("auto", cpu, tmp_path, "model-a", "ov-1", refuse, installed=WITH_NNCF)
    assert decision.precision == "f32" and decision.how == "no candidate"
    assert "no native bf16" in decision.summary() and "nothing to measure" in decision.summary()
    assert not (tmp_path / "precision").exists()  # nothing stored, nothing to re-read


def test_measured_once_then_read_back_per_cpu_and_model(tmp_path):
    cpu = precision.parse_cpuinfo(EPYC_BF16)
    calls: list[list[str]] = []

    def measure(candidates):
        calls.append(candidates)
        return {"bf16": figures(speedup=1.7)}

    first = precision.choose("auto", cpu, tmp_path, "model-a", "ov-1", measure, installed=NO_NNCF)
    assert (first.precision, first.how) == ("bf16", "measured") and calls == [["bf16"]]
    again = precision.choose("auto", cpu, tmp_path, "model-a", "ov-1", refuse, installed=NO_NNCF)
    assert (again.precision, again.how) == ("bf16", "stored") and again.figures == first.figures
    assert "1.70x f32" in again.summary() and "measured" in again.summary()
    # another model, another CPU, another OpenVINO or candidate set: measured again
    precision.choose("auto", cpu, tmp_path, "model-b", "ov-1", measure, installed=NO_NNCF)
    precision.choose("auto", precision.parse_cpuinfo(SAPPHIRE_AMX), tmp_path, "model-a", "ov-1", measure,
                     installed=NO_NNCF)
    precision.choose("auto", cpu, tmp_path, "model-a", "ov-2", measure, installed=NO_NNCF)
    assert len(calls) == 4
    assert precision.choose("auto", cpu, tmp_path, "model-a", "ov-1", None, installed=NO_NNCF).how == "stored"


def test_a_damaged_decision_is_measured_again(tmp_path):
    cpu = precision.parse_cpuinfo(EPYC_BF16)
    precision.choose("auto", cpu, tmp_path, "m", "ov", lambda c: {"bf16": figures(speedup=1.05)}, installed=NO_NNCF)
    path = precision.decision_path(tmp_path, cpu, "m", "ov", ["bf16"])
    assert json.loads(path.read_text())["precision"] == "f32"  # measured, did not pay: f32 stored too
    path.write_text("{not json")
    decision = precision.choose("auto", cpu, tmp_path, "m", "ov", lambda c: {"bf16": figures()}, installed=NO_NNCF)
    assert (decision.precision, decision.how) == ("bf16", "measured")


def test_an_explicit_setting_is_obeyed_without_measuring(tmp_path):
    zen3 = precision.parse_cpuinfo(ZEN3_AVX2)
    forced = precision.choose("bf16", zen3, tmp_path, "m", "ov", refuse)
    assert forced.precision == "bf16" and forced.how == "setting" and "not native" in forced.reason
    assert precision.choose("f32", precision.parse_cpuinfo(EPYC_BF16), tmp_path, "m", "ov", refuse).precision == "f32"
    before_load = precision.choose("auto", precision.parse_cpuinfo(EPYC_BF16), tmp_path, "m", "ov", None,
                                   installed=NO_NNCF)
    assert (before_load.precision, before_load.how) == ("f32", "not measured yet")


def _relative_imports(module) -> set[str]:
    """The ``qa`` modules a module imports, lazy imports included, read from its source."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def test_measuring_never_calls_back_into_the_encoders():
    """``qa.embed`` hands the loaded model over; the measuring compiles through ``qa.openvino``,
    which needs neither the encoders nor the decision rule."""
    from qa import openvino

    assert "openvino" in _relative_imports(precision) and "embed" not in _relative_imports(precision)
    assert not {"embed", "precision"} & _relative_imports(openvino)


def test_precision_setting_is_validated(monkeypatch):
    monkeypatch.setenv("QA_PRECISION", "bf16")
    assert Settings.load().precision == "bf16"
    monkeypatch.setenv("QA_PRECISION", "fp16")
    with pytest.raises(UsageError, match="auto, f32, bf16 or int8"):
        Settings.load()


def test_model_info_prints_the_decision_and_cpu_without_measuring(tmp_path, monkeypatch):
    from qa.embed import model_info

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(ZEN3_AVX2)
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    info = model_info(Settings.load().with_(cache_dir=tmp_path / "cache", backend="openvino", precision="auto"))
    assert info["cpu"] == "AMD EPYC 7R13 Processor (avx2)"
    assert info["precision"].startswith("f32 (no candidate: no native bf16")
    assert not (tmp_path / "cache" / "precision").exists()


def test_qa_model_info_prints_a_stored_decision_with_its_figures(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from qa.cli import cli

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(EPYC_BF16)
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QA_BACKEND", "openvino")
    monkeypatch.setenv("QA_PRECISION", "auto")
    before = CliRunner().invoke(cli, ["model", "info"], catch_exceptions=False).output
    assert "precision: f32 (not measured yet: the first model load measures bf16" in before
    assert "cpu: AMD EPYC 9R14 96-Core Processor (avx2, avx512f, avx512_bf16, avx512_vnni, avx_vnni)" in before

    import openvino as ov

    from qa.embed import model_info

    identity = model_info(Settings.load()).get("identity") or "?"  # not converted in an empty cache
    found = precision.candidates(precision.read_cpu())[0]
    precision.choose("auto", precision.read_cpu(), tmp_path / "cache", identity, ov.get_version(),
                     lambda c: {name: figures(speedup=1.62) for name in c})
    after = CliRunner().invoke(cli, ["model", "info"], catch_exceptions=False).output
    assert "precision: bf16 (stored: 1.62x f32, min cosine 0.99999 passages / 0.99999 queries" in after
    assert 'precision_figures[bf16]: {"cos_passages_min": 0.99999' in after
    data = json.loads(CliRunner().invoke(cli, ["model", "info", "--json"], catch_exceptions=False).output)
    assert data["precision_figures"]["bf16"]["speedup"] == 1.62 and data["precision"].startswith("bf16 (stored")
    assert data["precision_file"] == str(precision.decision_path(tmp_path / "cache", precision.read_cpu(), identity,
                                                                 ov.get_version(), found))


def test_shipped_probe_is_the_repositorys_seeds_and_questions(seeds_dir, eval_dir):
    shipped = json.loads(Path(precision.__file__).with_name("data").joinpath("probe.json").read_text("utf-8"))
    from qa.config import Settings
    from qa.pipeline import indexed_texts

    assert shipped == precision.build_probe(indexed_texts([seeds_dir], Settings()), eval_dir / "questions.jsonl")
    loaded = precision.probe()
    assert len(loaded["passages"]) >= 50 and len(loaded["queries"]) >= 50


# -- fidelity with the real bundled model --------------------------------------------------
@pytest.fixture(scope="module")
def f32_encoder():
    from qa.embed import load_encoder

    return load_encoder(Settings.load().with_(model="", backend="openvino", precision="f32"))


def _min_cosines(encoder, reference, probe) -> tuple[float, float]:
    p = (encoder.encode_passages(probe["passages"]) * reference["passages"]).sum(1)
    q = (encoder.encode_queries(probe["queries"]) * reference["queries"]).sum(1)
    return float(p.min()), float(q.min())


@pytest.fixture(scope="module")
def reference(f32_encoder):
    probe = precision.probe()
    return {"passages": f32_encoder.encode_passages(probe["passages"]),
            "queries": f32_encoder.encode_queries(probe["queries"])}


@pytest.mark.slow
def test_chosen_precision_is_faithful_and_keeps_the_index_identity(f32_encoder, reference):
    """Whatever auto chose on this CPU keeps cosine >= 0.9995 with f32 on the probe set,
    through both the full encoder and the light query path, under the same identity."""
    from qa.embed import load_encoder, load_query_encoder

    settings = Settings.load().with_(model="", backend="openvino", precision="auto")
    chosen = load_encoder(settings)
    assert chosen.decision is not None and chosen.decision.precision == chosen.precision
    assert chosen.identity == f32_encoder.identity  # same index on every machine, whatever the precision
    probe = precision.probe()
    cos_p, cos_q = _min_cosines(chosen, reference, probe)
    assert cos_p >= precision.MIN_COSINE and cos_q >= precision.MIN_COSINE, (chosen.precision, cos_p, cos_q)
    light = load_query_encoder(settings)
    assert light is not None and light.precision == chosen.precision and light.identity == chosen.identity
    cos_light = (light.encode_queries(probe["queries"]) * reference["queries"]).sum(1)
    assert cos_light.min() >= precision.MIN_COSINE, cos_light.min()


@pytest.mark.slow
def test_bf16_on_a_cpu_with_native_bf16_is_faithful(f32_encoder, reference):
    if "bf16" not in precision.read_cpu().native():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 or AMX)")
    from qa.embed import load_encoder

    bf16 = load_encoder(Settings.load().with_(model="", backend="openvino", precision="bf16"))
    assert bf16.precision == "bf16" and bf16.decision.how == "setting"
    cos_p, cos_q = _min_cosines(bf16, reference, precision.probe())
    assert cos_p >= precision.MIN_COSINE and cos_q >= precision.MIN_COSINE, (cos_p, cos_q)
    assert cos_p < 0.999999  # it really ran at another precision than f32 (identical vectors give 1 - 1e-7)
