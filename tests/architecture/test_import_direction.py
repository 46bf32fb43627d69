"""The import direction, read from the source (every import, including those inside functions): DAG files import the
library; the library never imports the DAGs, the sandbox, the dev stack or the benchmarks, and its modules form no
cycle; no library module grows past the size that usually means it holds two ideas."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "plugins" / "tradeops"
OUTSIDE_THE_LIBRARY = ("dags", "sandbox", "devstack", "bench", "tests")
MAX_MODULE_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO / "plugins").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` in the file can load (``from a import b`` names both
    ``a`` and ``a.b``: ``b`` may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


LIBRARY_MODULES = {module_name(path): path for path in LIBRARY.rglob("*.py")}


def library_graph() -> dict[str, set[str]]:
    return {
        name: {imported for imported in imported_names(path) if imported in LIBRARY_MODULES and imported != name}
        for name, path in LIBRARY_MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_finder_sees_a_cycle_and_function_level_imports(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from tradeops.a import b\n")
    assert imported_names(planted) == {"tradeops.a", "tradeops.a.b"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_has_no_import_cycle():
    assert cycles(library_graph()) == []


@pytest.mark.parametrize("name", sorted(LIBRARY_MODULES))
def test_the_library_never_imports_dags_sandbox_devstack_or_bench(name):
    outside = sorted(
        imported for imported in imported_names(LIBRARY_MODULES[name]) if imported.split(".")[0] in OUTSIDE_THE_LIBRARY
    )
    assert outside == [], f"{name} imports {outside}"


def test_dag_files_import_only_the_library_airflow_and_the_standard_library():
    for path in sorted((REPO / "dags").glob("*.py")):
        outside = sorted(imported for imported in imported_names(path) if imported.split(".")[0] in OUTSIDE_THE_LIBRARY)
        assert outside == [], f"{path.name} imports {outside}"


def test_no_library_module_is_past_the_size_of_one_idea():
    sizes = {name: len(path.read_text().splitlines()) for name, path in LIBRARY_MODULES.items()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
