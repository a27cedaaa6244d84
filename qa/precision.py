"""Which inference precision the OpenVINO encoder runs at on this CPU, chosen once by measurement.

Why measured and not assumed: machines differ. On a CPU with native bf16
(``avx512_bf16`` or AMX) OpenVINO's bf16 kernels kept cosine 0.99999 with f32
and ran about 1.7x faster; on a CPU without it bf16 would only be emulated,
so nothing is tried there. A candidate is adopted only when its vectors stay
within ``MIN_COSINE`` of f32 for BOTH passages and queries (deterministic)
and it beats f32 by ``MIN_SPEEDUP`` in the median of several interleaved
timing rounds (speed is noisy on a shared machine; fidelity is not). The
decision and its figures are stored in the cache directory, keyed by the
CPU's model and flags and the model's identity, so later starts read it
instead of measuring again.

The precision never enters the index identity: vectors that passed the
fidelity bar count as the same model's, so an index built at f32 on one
machine keeps answering at bf16 on another without re-embedding.

The decision rule (``choose``, ``pick``) takes the measuring as a function
(``measure``), so it and the CPU parser can be tested with fed text and
figures and need no OpenVINO. The measuring itself (``measure_precisions``)
is here too, compiling through ``qa.openvino`` (OpenVINO itself is
imported only when measuring), and never calls back into ``qa.embed``:
the caller hands over the loaded encoder as a ``Runner``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .openvino import compile_variant, release_memory
from .types import Status

PRECISIONS = ("f32", "bf16", "int8")
SETTINGS = ("auto", *PRECISIONS)
MIN_COSINE = 0.9995  # minimum over every probe text, passages and queries separately
MIN_SPEEDUP = 1.15  # median of the interleaved rounds' f32-time / candidate-time
ROUNDS = 5  # timing rounds per measurement (odd: the median is one round's ratio)
CACHE_VERSION = 1  # bump when the rule changes, so stored decisions are redone (a new probe is in the key)
# the flags a speed figure is meaningless without (printed by `qa model info`, `qa bench` and the benchmark)
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
NATIVE = {  # precision -> any of these flags means the CPU runs it natively
    "bf16": ("avx512_bf16", "amx_bf16"),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8"),
}
CPUINFO = Path("/proc/cpuinfo")  # tests point this at fed text

Measure = Callable[[list[str]], dict]


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as ``/proc/cpuinfo`` describes it: model name and feature flags."""

    model: str
    flags: frozenset[str] = field(default_factory=frozenset)

    def shown(self) -> list[str]:
        """The flags that matter for encoder speed, in a fixed order."""
        return [f for f in SHOWN_FLAGS if f in self.flags]

    def native(self) -> list[str]:
        """Lower precisions this CPU runs natively (emulated ones are never candidates)."""
        return [p for p, needs in NATIVE.items() if any(f in self.flags for f in needs)]

    def key(self) -> str:
        return f"{self.model}|{' '.join(sorted(self.flags))}"

    def describe(self) -> str:
        return f"{self.model} ({', '.join(self.shown()) or 'none of ' + ', '.join(SHOWN_FLAGS[:4])})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from ``/proc/cpuinfo`` text (x86 or Arm layout)."""
    model, flags = "", ""
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            if model and flags:
                break  # end of the first processor's block
            continue
        name = name.strip().lower()
        if name in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif name in ("flags", "features") and not flags:
            flags = value.strip()
    return CpuInfo(model or "unknown CPU", frozenset(flags.split()))


def read_cpu(path: str | Path | None = None) -> CpuInfo:
    """This machine's CPU; without a readable cpuinfo, an unknown CPU with no flags (f32 only)."""
    try:
        return parse_cpuinfo(Path(path or CPUINFO).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuInfo("unknown CPU")


def _probe_text() -> str:
    return resources.files("qa").joinpath("data/probe.json").read_text(encoding="utf-8")


def probe() -> dict[str, list[str]]:
    """The fixed probe set shipped with the package: seed passages and public questions.

    Package data, so an installed ``qa`` without the repository's folders can
    measure; ``tests/test_precision.py`` checks it equals what the repository's
    seeds and questions give (``benchmarks/fidelity.py --write-probe`` rewrites it).
    """
    data = json.loads(_probe_text())
    return {"passages": list(data["passages"]), "queries": list(data["queries"])}


def build_probe(passages: list[str], questions: Path) -> dict:
    """The probe set from the repository: every seed passage as the index embeds it
    (``pipeline.indexed_texts`` of the seeds at the default chunking; the caller makes them,
    so this module needs nothing of the pipeline) and every public question."""
    rows = [json.loads(line) for line in Path(questions).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {"about": "qa precision probe: seed passages (as indexed) and the public questions; "
                     "written by benchmarks/fidelity.py --write-probe",
            "passages": passages, "queries": [r["question"] for r in rows]}


@dataclass
class Decision:
    """The precision in use, why, and the figures behind it (plain data, stored as JSON)."""

    precision: str
    how: str  # "setting" | "no candidate" | "measured" | "stored" | "not measured yet"
    reason: str
    cpu: dict
    figures: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # when, how long, load average

    def as_dict(self) -> dict:
        return {"precision": self.precision, "how": self.how, "reason": self.reason, "cpu": self.cpu,
                "figures": self.figures, "measured": self.measured}

    def summary(self) -> str:
        """One line for ``qa model info`` and the load progress."""
        line = f"{self.precision} ({self.how}: {self.reason})"
        if self.measured:
            line += f"; measured {self.measured.get('at', '?')} in {self.measured.get('seconds', '?')} s"
        return line


def _cpu_dict(cpu: CpuInfo) -> dict:
    return {"model": cpu.model, "flags": cpu.shown(), "native": cpu.native()}


def decision_path(cache_dir: Path, cpu: CpuInfo, identity: str, runtime: str, measured: list[str]) -> Path:
    """Where the decision for this CPU, model, OpenVINO version, set of candidates and probe set
    is stored (installing nncf adds int8 to the candidates, so it is measured then; a probe set
    rewritten from changed seeds or questions is measured again too)."""
    probe_hash = hashlib.sha256(_probe_text().encode()).hexdigest()[:12]
    key = f"v{CACHE_VERSION}|{cpu.key()}|{identity}|{runtime}|{','.join(measured)}|{probe_hash}"
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / "precision" / f"{tag}.json"


def candidates(cpu: CpuInfo, installed: Callable[[str], bool] | None = None) -> tuple[list[str], str]:
    """What ``auto`` measures on this CPU, and a note on what it leaves out.

    Only natively supported precisions: emulated bf16 or int8 is slower, and
    measuring it would only cost time. int8 also needs NNCF to quantise the
    weights, which qa does not install (on the CPU it was measured on, bf16
    was faster and more faithful; README, "The embedding model"), so it is a
    candidate only where nncf is installed.
    """
    installed = installed or (lambda module: importlib.util.find_spec(module) is not None)
    native = cpu.native()
    found = [p for p in native if p != "int8" or installed("nncf")]
    notes = []
    if "bf16" not in native:
        notes.append("no native bf16 (avx512_bf16 or AMX)")
    if "int8" not in native:
        notes.append("no native int8 (VNNI or AMX)")
    elif "int8" not in found:
        notes.append("int8 is native but needs nncf (not installed)")
    return found, "; ".join(notes)


def pick(figures: dict) -> tuple[str, str]:
    """The rule: the fastest candidate that keeps fidelity and pays, else f32; with the reason.

    "Pays" is at least ``MIN_SPEEDUP`` over f32, and a candidate that is
    less faithful than another passing one must also beat that one by
    ``MIN_SPEEDUP``: two candidates within each other's noise (bf16 and
    int8 weights were) are then settled by fidelity, which is measured
    exactly, rather than by which round happened to be quieter.
    """
    passed, failed = [], []
    for name, f in figures.items():
        if "error" in f:
            failed.append(f"{name} could not run ({f['error']})")
        elif min(f["cos_passages_min"], f["cos_queries_min"]) < MIN_COSINE:
            failed.append(f"{name} min cosine {f['cos_passages_min']:.5f} / {f['cos_queries_min']:.5f} "
                          f"< {MIN_COSINE}")
        elif f["speedup"] < MIN_SPEEDUP:
            failed.append(f"{name} {f['speedup']:.2f}x f32 < {MIN_SPEEDUP}x")
        else:
            passed.append(name)
    if not passed:
        return "f32", "; ".join(failed) or "no candidate"
    fidelity = lambda n: min(figures[n]["cos_passages_min"], figures[n]["cos_queries_min"])  # noqa: E731
    passed.sort(key=fidelity, reverse=True)
    best = passed[0]
    for name in passed[1:]:
        if figures[name]["speedup"] >= figures[best]["speedup"] * MIN_SPEEDUP:
            best = name
        else:
            failed.append(f"{name} {figures[name]['speedup']:.2f}x f32, not {MIN_SPEEDUP}x faster than the more "
                          f"faithful {best}")
    f = figures[best]
    why = (f"{f['speedup']:.2f}x f32, min cosine {f['cos_passages_min']:.5f} passages / "
           f"{f['cos_queries_min']:.5f} queries")
    return best, "; ".join([why, *failed])


def stored(path: Path) -> Decision | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("precision") not in PRECISIONS:
            return None
        return Decision(data["precision"], "stored", data["reason"], data["cpu"], data.get("figures", {}),
                        data.get("measured", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: measure again, it is only a cache


def _store(path: Path, decision: Decision, identity: str, runtime: str) -> None:
    """Written to a temp file and renamed into place: a killed run leaves no half decision."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"version": CACHE_VERSION, "identity": identity, "runtime": runtime, **decision.as_dict()}
    fd, tmp = tempfile.mkstemp(prefix=".decision-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def choose(setting: str, cpu: CpuInfo, cache_dir: Path, identity: str, runtime: str,
           measure: Measure | None = None, installed: Callable[[str], bool] | None = None) -> Decision:
    """The precision to compile with.

    ``measure(candidates)`` returns figures per candidate (see ``pick``); it
    is called only for ``auto`` on a CPU with a native candidate and no
    stored decision. ``measure=None`` means "do not measure now": such a
    call answers f32 with how="not measured yet" (``qa model info``, the
    light query path before the first full load). ``installed(module)``
    says whether an optional package is there (default: importable).
    """
    where = _cpu_dict(cpu)
    if setting != "auto":
        native = setting == "f32" or setting in cpu.native()
        reason = "set by QA_PRECISION" + ("" if native else "; not native on this CPU, OpenVINO may emulate it")
        return Decision(setting, "setting", reason, where)
    found, note = candidates(cpu, installed)
    if not found:
        return Decision("f32", "no candidate", f"{note}: nothing to measure", where)
    path = decision_path(cache_dir, cpu, identity, runtime, found)
    known = stored(path)
    if known is not None:
        return known
    if measure is None:
        return Decision("f32", "not measured yet", f"the first model load measures {', '.join(found)} "
                        "against f32 once", where)
    started, load = time.perf_counter(), os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    figures = measure(found)
    precision, reason = pick(figures)
    measured = {"at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "seconds": round(time.perf_counter() - started, 1), "load_before": load,
                "load_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    decision = Decision(precision, "measured", reason, where, figures, measured)
    try:
        _store(path, decision, identity, runtime)
    except OSError:
        pass  # a read-only cache: measure again next time rather than fail
    return decision


def speedup(f32_seconds: list[float], seconds: list[float]) -> dict[str, Any]:
    """Paired rounds -> median ratio: each round timed both back to back, so load hits both alike."""
    ratios = sorted(a / b for a, b in zip(f32_seconds, seconds, strict=True))
    mid = len(ratios) // 2
    median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    return {"speedup": round(median, 3), "ratios": [round(r, 3) for r in ratios]}


def inconclusive(f32_seconds: list[float], seconds: list[float]) -> bool:
    """True when the rounds split on the threshold: fewer than four in five agree on which side
    of ``MIN_SPEEDUP`` the candidate is. Fidelity needs no such guard: it is deterministic."""
    ratios = [a / b for a, b in zip(f32_seconds, seconds, strict=True)]
    above = sum(r >= MIN_SPEEDUP for r in ratios)
    return min(above, len(ratios) - above) * 5 > len(ratios)


class Runner(Protocol):
    """What the measurement needs of a loaded encoder: the same encoder pointed at another compiled
    network, and the model's token ids (to calibrate ``int8-static``)."""

    def with_network(self, compiled: Any) -> Callable[[list[str], str], np.ndarray]:
        """``encode(texts, kind)`` through ``compiled``, ``kind`` "passage" or "query" (its prompt)."""
        ...

    def token_ids(self, text: str) -> list[int]: ...


def measurer(runner: Runner, xml: Path, threads: int, streams: int, say: Status) -> Measure:
    """The ``measure`` that ``choose`` calls for a loaded encoder whose network was exported
    to ``xml``: says once what it does, then ``measure_precisions``."""

    def measure(candidates: list[str]) -> dict:
        say(f"measuring {', '.join(candidates)} against f32 once for this CPU (about half a minute)")
        return measure_precisions(runner, xml, candidates, threads, streams)

    return measure


def measure_precisions(runner: Runner, xml: Path, candidates: list[str], threads: int, streams: int,
                       rounds: int = ROUNDS) -> dict:
    """Figures for ``pick``: each candidate against f32 on the shipped probe set.

    Fidelity: every probe passage (passage prompt) and question (query
    prompt) through the real encoding path (the encoder's own, pointed at
    each compiled candidate), cosine with f32, deterministic.
    Speed: ``rounds`` timing rounds; in each round every precision encodes
    the same passages back to back, the order reversed every other round,
    so drift and other work on the machine hit all alike, and the median of
    the per-round ratios decides. The first round is the fidelity pass over
    all passages, the others use every fourth passage, to keep the one-time
    cost short. When the rounds disagree about the threshold (a busy
    machine), as many rounds again are run, once. The compiled candidates
    are released before this returns (they were most of a first build's
    memory peak when kept).
    """
    import openvino as ov

    shipped = probe()
    passages, queries, timing = shipped["passages"], shipped["queries"], shipped["passages"][::4]
    core = ov.Core()
    read: dict[Path, Any] = {}  # f32 and bf16 compiled from one read of the export: its weights mapped once
    runs: dict[str, Any] = {}
    figures: dict[str, dict] = {}
    try:
        for name in ["f32", *candidates]:
            try:
                calibration = None
                if name == "int8-static":
                    calibration = [np.asarray([runner.token_ids(t)], np.int64) for t in passages]
                runs[name] = runner.with_network(compile_variant(xml, name, threads, streams, core, calibration, read))
            except Exception as exc:  # a candidate that cannot run is reported, not adopted
                if name == "f32":
                    raise
                figures[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for name, encode in runs.items():
            encode(passages[:2], "passage")  # warm-up: the first requests allocate
            started = time.perf_counter()
            passage_vectors = encode(passages, "passage")
            seconds[name].append((time.perf_counter() - started) * len(timing) / len(passages))  # per round's texts
            vectors[name] = (passage_vectors, encode(queries, "query"))
        names = list(runs)

        def timing_rounds(first: int, last: int) -> None:
            for r in range(first, last):
                for name in (names[::-1] if r % 2 else names):
                    started = time.perf_counter()
                    runs[name](timing, "passage")
                    seconds[name].append(time.perf_counter() - started)

        timing_rounds(1, rounds)
        if any(inconclusive(seconds["f32"], seconds[n]) for n in names[1:]):
            timing_rounds(rounds, 2 * rounds)  # once: a split verdict under load gets twice the rounds
    finally:
        runs.clear()  # the compiled candidates and the read export go now, before the chosen one is compiled
        read.clear()
        release_memory()
    ref_p, ref_q = vectors["f32"]
    rate = lambda s: round(len(timing) / float(np.median(s)), 2)  # noqa: E731
    for name in names[1:]:
        cos_p, cos_q = (vectors[name][0] * ref_p).sum(1), (vectors[name][1] * ref_q).sum(1)
        figures[name] = {"cos_passages_min": round(float(cos_p.min()), 6),
                         "cos_passages_mean": round(float(cos_p.mean()), 6),
                         "cos_queries_min": round(float(cos_q.min()), 6),
                         "cos_queries_mean": round(float(cos_q.mean()), 6),
                         **speedup(seconds["f32"], seconds[name]),
                         "passages_per_s": rate(seconds[name]), "f32_passages_per_s": rate(seconds["f32"]),
                         "probe": f"{len(passages)} passages, {len(queries)} queries; timed: all of them, "
                                  f"then {len(seconds['f32']) - 1} rounds of {len(timing)} passages"}
    return figures
