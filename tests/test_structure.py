"""The package's shape: imports flow one way, and only ``qa/index/`` knows an index's files.

Read from the source with ``ast`` (nothing is imported), so a lazy import
inside a function counts as much as one at the top: a cycle through a lazy
import is still two modules that each need the other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qa"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The ``qa`` modules ``path`` imports (``from . import x`` counts as the module ``x``, not its package)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # a submodule if there is one by that name, else a name in ``base``
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) for name, path in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> b -> ... -> a, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_are_resolved(tmp_path):
    edges = graph()
    assert "qa.pipeline" in edges["qa.cli"]  # a lazy import inside a function
    assert "qa.index.interface" in edges["qa.index"]  # ``from .interface import ...`` in a package
    assert "qa.bench.coldstart" in edges["qa.bench"]  # ``from . import coldstart``
    assert "qa.types" in edges["qa.index.store"]  # ``from ..types import ...``


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("stage", ["qa.load", "qa.clean", "qa.chunk"])
def test_reading_cleaning_and_chunking_do_not_call_each_other(stage):
    """Only the pipeline puts them in order; each stage takes and returns ``qa.types``."""
    others = {"qa.load", "qa.clean", "qa.chunk"} - {stage}
    assert not graph()[stage] & others


def test_only_the_index_package_and_the_bench_baselines_reach_inside_qa_index():
    """Callers use ``qa.index`` (the interface and ``connect``). The bench's plain
    baselines wrap FAISS and bm25s directly (``vectors``, ``keyword``) on purpose:
    they measure the libraries without the index around them."""
    allowed = {"qa.index", "qa.index.interface"}
    for name, deps in graph().items():
        if name.startswith("qa.index"):
            continue
        inside = {d for d in deps if d.startswith("qa.index.")} - allowed
        if name == "qa.bench":
            inside -= {"qa.index.vectors", "qa.index.keyword"}
        assert not inside, (name, inside)


INDEX_FILES = re.compile(r"CURRENT|snapshots|store-|cache\.sqlite|build\.lock|bm25/|manifest\.json|vectors\.faiss")


def test_nothing_outside_qa_index_names_a_file_of_an_index_folder():
    for name, path in modules().items():
        if name.startswith("qa.index"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            assert not INDEX_FILES.search(line), f"{path.name}:{number}: {line.strip()}"


def test_the_web_chat_is_layered_and_only_the_cli_starts_it():
    """guard <- chat <- admin <- layout <- server: answering never needs the admin side, and the
    rest of the package does not know the web exists (``qa serve`` is the one way in)."""
    edges = graph()
    layers = ["qa.web.guard", "qa.web.chat", "qa.web.admin", "qa.web.layout", "qa.web.server"]
    for number, name in enumerate(layers):
        assert not edges[name] & set(layers[number + 1 :]), name
    users = {name for name, deps in edges.items() if not name.startswith("qa.web") and any(
        d.startswith("qa.web") for d in deps)}
    assert users == {"qa.cli"}


def test_the_abstention_decision_has_one_home():
    """``qa.abstain`` decides from signals alone (it imports nothing of the package), and only the pipeline,
    which gathers the signals, asks it: a second rule elsewhere would have to import it or repeat it."""
    edges = graph()
    assert edges["qa.abstain"] == set()
    assert {name for name, deps in edges.items() if "qa.abstain" in deps} == {"qa.pipeline"}
