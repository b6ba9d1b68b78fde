"""The shape of the code, checked: no import cycles in `sandbox/`, and the service's functions
short enough to read at once.

Imports are read from the source with `ast` (every `import` anywhere in a module: at the top, in a
function, under TYPE_CHECKING), because a cycle hidden in a function is still a cycle between two
concepts. Importing a name from a package counts as importing the package, unless the name is a
submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sandbox"

# The job's path on the service side (route -> job service -> agreements, ledger, audit, store,
# settle) and everything else the service owns: no function of 60 lines or more.
SHORT = ("api", "audit", "jobs", "store", "web", "abuse.py", "accounts.py", "agreements.py", "ledger.py",
         "private_files.py", "settings.py")
MAX_LINES = 60


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
    return {m for m in found if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read() -> None:
    """The checker itself: it sees the imports it must see (a checker that sees none passes)."""
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert {"sandbox.audit.chain", "sandbox.store"} <= graph["sandbox.audit.checkpoints"]
    assert "sandbox.jobs.settle" in graph["sandbox.jobs.service"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    found = cycles(graph)
    assert found == [], "modules that import each other (directly or around a loop): " + "; ".join(
        " <-> ".join(sorted(c)) for c in found)


@pytest.mark.parametrize("part", SHORT)
def test_service_functions_are_short(part: str) -> None:
    paths = [ROOT / part] if part.endswith(".py") else sorted((ROOT / part).rglob("*.py"))
    long = [f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in paths for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 >= MAX_LINES]
    assert long == [], f"split these (one step of the path per function): {long}"
