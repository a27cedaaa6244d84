"""The documentation names only what exists, and names every setting there is.

The README, docs/*.md and benchmarks/README.md are read as a whole: each
``qa/...`` path they mention must exist in the repository, each ``QA_*``
setting they mention must be one the code reads, and each setting the code
reads must be named in at least one of them. The settings are found from the
code (the fields of ``qa.config.Settings``, confirmed to be read from their
variables, plus ``QA_*`` variables read straight from the environment), never
from a list kept here, so a new setting without a doc line fails this test.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

from qa.config import Settings
from qa.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 250

# a qa/ path that starts a path (not ~/.cache/qa/..., not a URL's .../qa/...)
PATH = re.compile(r"(?<![\w./~$-])qa/[\w./-]*")
SETTING = re.compile(r"\bQA_[A-Z0-9_]+")
# a QA_* variable read straight from the environment, outside Settings
ENV_READ = re.compile(r"""(?:environ\.get|getenv|environ\[|environ\.setdefault)\(?\s*["'](QA_[A-Z0-9_]+)["']""")


def _docs() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def _text(doc: Path) -> str:
    return doc.read_text(encoding="utf-8")


def _settings_fields(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """``QA_<FIELD>`` for every field of Settings, after checking that Settings.load reads it.

    Each variable is set, alone, to a sentinel: reading it either changes the field or
    fails validation; a variable that is not read leaves the defaults untouched.
    """
    for name in [n for n in os.environ if n.startswith("QA_")]:
        monkeypatch.delenv(name)
    default = Settings()
    names = set()
    for f in fields(Settings):
        variable = f"QA_{f.name.upper()}"
        kind = str(f.type)
        sentinel = "/qa-docs-sentinel" if "Path" in kind else "7" if "int" in kind else "qa_docs_sentinel"
        monkeypatch.setenv(variable, sentinel)
        try:
            read = getattr(Settings.load(), f.name) != getattr(default, f.name)
        except UsageError:
            read = True
        monkeypatch.delenv(variable)
        assert read, f"Settings.load does not read {variable} for field {f.name}: update how this test maps names"
        names.add(variable)
    return names


def _direct_reads() -> set[str]:
    names = set()
    for py in sorted((ROOT / "qa").rglob("*.py")):
        names |= set(ENV_READ.findall(py.read_text(encoding="utf-8")))
    return names


def test_readme_is_short() -> None:
    lines = len(_text(README).splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_docs_name_only_existing_qa_paths() -> None:
    missing = []
    for doc in _docs():
        for match in PATH.finditer(_text(doc)):
            path = match.group().rstrip(".,")
            if not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, "docs name qa/ paths that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_docs_name_every_setting_and_only_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_fields(monkeypatch) | _direct_reads()
    named: dict[str, set[str]] = {}
    for doc in _docs():
        for name in SETTING.findall(_text(doc)):
            named.setdefault(name.rstrip("_"), set()).add(str(doc.relative_to(ROOT)))
    unknown = {name: where for name, where in named.items() if name not in settings}
    assert not unknown, "docs name settings the code does not read:\n" + "\n".join(
        f"{name} ({', '.join(sorted(where))})" for name, where in sorted(unknown.items()))
    undocumented = sorted(settings - named.keys())
    assert not undocumented, f"settings no doc names: {', '.join(undocumented)}"


def test_ci_runs_the_readme_test_command_as_written() -> None:
    """CI proves the README's second command, so the two must not drift apart."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if "python -m pytest" in line and line.startswith(".venv/")]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert commands == [ci]


def test_the_performance_tables_are_rendered_from_the_kept_bench_runs():
    """README.md's and benchmarks/README.md's `qa bench` tables are what ``benchmarks/bench_table.py``
    renders from the runs in ``benchmarks/results/``: a figure edited by hand, or a new run whose
    table was not re-rendered, fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_table", ROOT / "benchmarks" / "bench_table.py")
    assert spec and spec.loader
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    kept = table.runs()
    assert kept, "no qa bench run is kept in benchmarks/results/"
    rendered = f"{table.START}\n{table.render(kept)}\n{table.END}"
    for doc in table.TARGETS:
        assert rendered in _text(doc), f"{doc.name}: run python benchmarks/bench_table.py"
