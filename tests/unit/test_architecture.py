"""The import graph of ``lkern``: no cycles, services apart, ports without their adapters.

Every import counts: at module level, inside functions and under
``TYPE_CHECKING``, since each is a dependency someone has to understand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lkern
from lkern.conformance.imports import SourceTree, check_imports, service_packages, within
from lkern.conformance.subject import Subject
from lkern.services import SERVICES

SOURCE = Path(lkern.__file__).parent
#: The same graph ``lkern check`` reads a service's imports from.
TREE = SourceTree([SOURCE])


def graph() -> dict[str, frozenset[str]]:
    return TREE.graph


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
    seen = {TREE.known(name) for name, _ in TREE.imported("lkern.platform.example", path, source)}
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
    """The rule of ``lkern check`` (tests/unit/test_conformance.py shows it catching one)."""
    for definition in SERVICES.values():
        assert list(check_imports(Subject(definition, SERVICES))) == []


# The console knows the services by their REST routes alone, as it would in a deployment.
@pytest.mark.parametrize("package", ["lkern.platform", "lkern.console"])
def test_the_platform_and_the_console_import_no_service(package: str):
    services = [*service_packages(SERVICES.values()).values(), "lkern.services"]
    for module, targets in graph().items():
        if module == package or module.startswith(f"{package}."):
            wrong = sorted(t for t in targets if within(t, services))
            assert not wrong, f"{module} imports a service: {wrong}"


def test_ports_do_not_import_their_adapters():
    adapters = {"lkern.platform.events.kafka", "lkern.platform.events.memory"}
    assert not graph()["lkern.platform.events.broker"] & adapters
    choosing = {module for module, targets in graph().items() if targets & adapters}
    # Only the composition root picks an adapter (the adapters share helpers with each other).
    assert choosing - adapters == {"lkern.platform.bootstrap"}
