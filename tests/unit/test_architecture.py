"""The import graph of ``lkern``: no cycles, services apart, ports without their adapters.

Every import counts: at module level, inside functions and under
``TYPE_CHECKING``, since each is a dependency someone has to understand.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import lkern
from lkern.services import SERVICES

SOURCE = Path(lkern.__file__).parent
ROOT = SOURCE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in SOURCE.rglob("*.py")}


def _known(name: str) -> str | None:
    """The module of ours that importing ``name`` loads (a package for its attribute)."""
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, path: Path, source: str | None = None) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in modules() else base


@cache
def graph() -> dict[str, frozenset[str]]:
    edges = {}
    for module, path in modules().items():
        targets = {_known(name) for name in _imported(module, path)}
        edges[module] = frozenset(t for t in targets if t is not None and t != module)
    return edges


def cycles(edges: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def service_packages() -> dict[str, str]:
    """Each registered service's package, by service name."""
    return {
        name: _module_name(definition.migrations_dir.parent / "__init__.py")
        for name, definition in SERVICES.items()
    }


def _within(module: str, packages: list[str]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def test_the_graph_sees_every_kind_of_import():
    source = """
from typing import TYPE_CHECKING

import lkern.platform.db
from . import uow
from .events import relay

if TYPE_CHECKING:
    from lkern.platform.reads import Reader


def later() -> None:
    from lkern.platform.settings import Settings
"""
    path = SOURCE / "platform" / "example.py"
    seen = {_known(name) for name in _imported("lkern.platform.example", path, source)}
    assert seen == {
        "lkern.platform.db",
        "lkern.platform.uow",
        "lkern.platform.events.relay",
        "lkern.platform.reads",
        "lkern.platform.settings",
        None,  # typing
    }
    assert "lkern.platform.reads" in graph()["lkern.platform.uow"]  # under TYPE_CHECKING


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_cycles_are_found():
    assert cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}) == [
        ["a", "b", "c"]
    ]


def test_services_import_no_other_service():
    packages = service_packages()
    for name, package in packages.items():
        others = [p for other, p in packages.items() if other != name]
        for module, targets in graph().items():
            if module == package or module.startswith(f"{package}."):
                wrong = sorted(
                    t
                    for t in targets
                    for other in others
                    if t == other or t.startswith(other + ".")
                )
                assert not wrong, f"{module} imports another service: {wrong}"


def test_the_platform_imports_no_service():
    services = [*service_packages().values(), "lkern.services"]
    for module, targets in graph().items():
        if module.startswith("lkern.platform"):
            wrong = sorted(t for t in targets if _within(t, services))
            assert not wrong, f"{module} imports a service: {wrong}"


def test_ports_do_not_import_their_adapters():
    adapters = {"lkern.platform.events.kafka", "lkern.platform.events.memory"}
    assert not graph()["lkern.platform.events.broker"] & adapters
    choosing = {module for module, targets in graph().items() if targets & adapters}
    # Only the composition root picks an adapter (the adapters share helpers with each other).
    assert choosing - adapters == {"lkern.platform.bootstrap"}
