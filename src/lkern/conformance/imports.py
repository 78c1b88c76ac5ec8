"""The import graph of Python packages, and the rule that services stay apart.

tests/unit/test_architecture.py reads the same graph for its rules of the whole
tree (no cycles, the platform imports no service, ports without adapters).
Every import counts: at module level, inside functions and under
``TYPE_CHECKING``, since each is a dependency someone has to understand.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

from lkern.conformance.subject import Subject, Violation, package_of
from lkern.platform.service import ServiceDefinition

RULE = "IMPORT-OTHER-SERVICE"


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at ``path``, for a tree whose top package is in ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def within(module: str, packages: Iterable[str]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


class SourceTree:
    """The modules of some packages (each given by its folder) and what they import."""

    def __init__(self, packages: Iterable[Path]) -> None:
        self.packages = sorted(set(packages))

    @cached_property
    def modules(self) -> dict[str, Path]:
        return {
            module_name(path, package.parent): path
            for package in self.packages
            for path in package.rglob("*.py")
        }

    def known(self, name: str) -> str | None:
        """The module of the tree that importing ``name`` loads (a package for its attribute)."""
        while name and name not in self.modules:
            name = name.rpartition(".")[0]
        return name or None

    def imported(
        self, module: str, path: Path, source: str | None = None
    ) -> Iterator[tuple[str, int]]:
        """Each name ``module`` imports, with the line it does so on."""
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text() if source is None else source, str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                yield from ((alias.name, node.lineno) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    yield (full if full in self.modules else base), node.lineno

    @cached_property
    def graph(self) -> dict[str, frozenset[str]]:
        """Which modules of the tree each module of the tree imports."""
        edges = {}
        for module, path in self.modules.items():
            targets = {self.known(name) for name, _ in self.imported(module, path)}
            edges[module] = frozenset(t for t in targets if t is not None and t != module)
        return edges


def service_packages(definitions: Iterable[ServiceDefinition]) -> dict[str, str]:
    """Each service's package, by service name."""
    return {definition.name: package_of(definition)[0] for definition in definitions}


def check_imports(subject: Subject) -> Iterator[Violation]:
    others = service_packages(d for d in subject.others.values() if d.name != subject.name)
    # Packages nested in ours (a service kept inside another's folder) are not "other".
    others = {name: p for name, p in others.items() if not subject.owns(p)}
    folders = [subject.package_dir, *(package_of(d)[1] for d in subject.others.values())]
    tree = SourceTree(folders)
    for module, path in tree.modules.items():
        if not subject.owns(module):
            continue
        for name, line in tree.imported(module, path):
            target = tree.known(name) or name
            for other, package in others.items():
                if within(target, [package]):
                    yield Violation(
                        path, line, RULE, f"imports {target}, a module of the {other} service"
                    )
