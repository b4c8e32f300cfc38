"""The layering docs/architecture.md describes holds in the code: the platform imports no
domain, and no module imports itself back through others (no import cycle).

Read from the source with `ast`, so a lazy import inside a function counts too (it is still a
dependency); imports under ``if TYPE_CHECKING:`` count for the layering (naming a domain's
type is depending on it) but not for cycles (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

DOMAINS = ("shop.accounts", "shop.catalog", "shop.orders", "shop.console", "shop.importer")
"""The domain packages: each owns its models, rules, HTTP layer and jobs."""

COMPOSITION_ROOTS = frozenset({"shop.app", "shop.cli", "shop.dev", "shop.tasks", "shop.models"})
"""Modules whose job is to join the domains: the app, the CLI, dev mode, the task registry
and the full table metadata (Alembic). They may import anything; nothing platform imports them."""

PLATFORM = (
    "shop._compat",
    "shop.cache",
    "shop.cpu",
    "shop.db",
    "shop.errors",
    "shop.identity",
    "shop.job_failures",
    "shop.jobs",
    "shop.migrations",
    "shop.ops",
    "shop.pagination",
    "shop.queue",
    "shop.reads",
    "shop.schemas",
    "shop.settings",
)
"""Everything else under shop: what the domains build on. Listed, so a new top-level module
has to be placed (the test below fails for a module in no group)."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "shop").rglob("*.py"):
        parts = path.with_suffix("").relative_to(SRC).parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _in(name: str, groups: tuple[str, ...] | frozenset[str]) -> bool:
    return any(name == group or name.startswith(group + ".") for group in groups)


def _imports(name: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """``(imported shop module, line, only while type checking)`` for every import in the file."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "shop" or target.startswith("shop."):
                yield target, node.lineno, id(node) in type_only


def test_every_module_is_a_domain_a_composition_root_or_platform() -> None:
    unplaced = [
        name
        for name in MODULES
        if name != "shop"
        and not _in(name, DOMAINS)
        and name not in COMPOSITION_ROOTS
        and not _in(name, PLATFORM)
    ]

    assert unplaced == [], "place these in DOMAINS, COMPOSITION_ROOTS or PLATFORM"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _in(n, PLATFORM)))
def test_a_platform_module_imports_no_domain_and_no_composition_root(name: str) -> None:
    wrong = [
        f"line {line}: {target}"
        for target, line, _ in _imports(name, MODULES[name])
        if _in(target, DOMAINS) or target in COMPOSITION_ROOTS
    ]

    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
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
            component = []
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


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_through_others() -> None:
    graph = {
        name: {target for target, _, type_only in _imports(name, path) if not type_only}
        for name, path in MODULES.items()
    }

    assert _cycles(graph) == []
