"""No import cycles in any Tollgate package.

Builds each package's import graph with `ast` (every `import`/`from ... import`,
also those inside functions, which is how a cycle hides; `if TYPE_CHECKING:` blocks
are skipped because they never run) and fails on:

* a cycle between modules, of any length;
* two subpackages that import each other (`tollgate.accounts.apis` and
  `tollgate.accounts.keys`, each taken whole), even when their modules do not form a
  cycle: the shared piece belongs in a module both can import.

A deferred import is not a fix: move the shared code instead.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "tollgate.contracts": ROOT / "libs/contracts/src/tollgate/contracts",
    "tollgate.kit": ROOT / "libs/kit/src/tollgate/kit",
    **{
        f"tollgate.{path.name}": path / "src/tollgate" / path.name
        for path in sorted((ROOT / "services").iterdir())
        if (path / "src/tollgate" / path.name).is_dir()
    },
}


def _module_name(package: str, root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every module name `tree` imports (`from x import y` yields `x.y` and `x`)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep])
                source = f"{prefix}.{node.module}" if node.module else prefix
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def module_graph(package: str, root: Path) -> dict[str, set[str]]:
    """module -> modules of the same package it imports."""
    files = {_module_name(package, root, f): f for f in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, file in files.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        is_package = file.name == "__init__.py"
        targets = {t for t in _imports(tree, name, is_package) if t in files}
        graph[name] = targets - {name}
    return graph


def subpackage_edges(package: str, root: Path, graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(A, B) for every subpackage A of `package` with a module that imports one of B."""
    subpackages = {f"{package}.{d.name}" for d in root.iterdir() if (d / "__init__.py").is_file()}

    def part(module: str) -> str | None:
        head = ".".join(module.split(".")[: package.count(".") + 2])
        return head if head in subpackages else None

    return {
        (a, b)
        for source, targets in graph.items()
        for target in targets
        if (a := part(source)) and (b := part(target)) and a != b
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(found: Iterable[list[str]]) -> str:
    return "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_cycle_between_modules(package: str) -> None:
    graph = module_graph(package, PACKAGES[package])
    assert not cycles(graph), _describe(cycles(graph))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_two_subpackages_import_each_other(package: str) -> None:
    root = PACKAGES[package]
    edges = subpackage_edges(package, root, module_graph(package, root))
    both_ways = sorted(f"{a} <-> {b}" for a, b in edges if a < b and (b, a) in edges)
    assert not both_ways, "; ".join(both_ways)


def test_the_checker_sees_a_deferred_import() -> None:
    tree = ast.parse("def f():\n    from a.b import c\n")
    assert set(_imports(tree, "a.x", False)) == {"a.b", "a.b.c"}
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
