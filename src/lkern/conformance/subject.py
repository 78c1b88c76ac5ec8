"""What a check looks at: one service, its package, its app; and what it reports."""

from __future__ import annotations

import ast
import importlib
import inspect
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from lkern.conformance.guards import api_routes, without_unguarded
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Environment, Settings


@dataclass(frozen=True, order=True)
class Violation:
    """One breach of a convention, at the place a developer would fix it."""

    path: Path
    line: int
    rule: str
    message: str

    def render(self, base: Path | None = None) -> str:
        base = Path.cwd() if base is None else base
        shown = self.path.relative_to(base) if self.path.is_relative_to(base) else self.path
        return f"{shown}:{self.line}: {self.rule} {self.message}"


def package_of(definition: ServiceDefinition) -> tuple[str, Path]:
    """The dotted name and folder of the package a service lives in: the one holding its
    ``migrations/`` folder (every service has one), named up to the first folder that is
    not a package."""
    folder = definition.migrations_dir.parent
    parts = [folder.name]
    parent = folder.parent
    while (parent / "__init__.py").exists():
        parts.insert(0, parent.name)
        parent = parent.parent
    return ".".join(parts), folder


def source_location(obj: Any) -> tuple[Path, int]:
    """Where a function (or class) is written: the line of its first decorator, which
    for a route is where it is declared."""
    target = inspect.unwrap(obj)
    path = inspect.getsourcefile(target) or inspect.getfile(target)
    try:
        line = inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        line = 1
    return Path(path), line


@dataclass
class Subject:
    """One service under check, with the other registered services beside it."""

    definition: ServiceDefinition
    others: Mapping[str, ServiceDefinition]
    _trees: dict[Path, ast.Module] = field(default_factory=dict, repr=False)
    _scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.definition.name

    @cached_property
    def package(self) -> str:
        return package_of(self.definition)[0]

    @cached_property
    def package_dir(self) -> Path:
        return package_of(self.definition)[1]

    def files(self) -> list[Path]:
        """Every Python file of the service's package, its migrations included."""
        return sorted(self.package_dir.rglob("*.py"))

    def tree(self, path: Path) -> ast.Module:
        if path not in self._trees:
            self._trees[path] = ast.parse(path.read_text(), str(path))
        return self._trees[path]

    def owns(self, module: str) -> bool:
        return module == self.package or module.startswith(f"{self.package}.")

    @cached_property
    def modules(self) -> dict[str, ModuleType]:
        """The package's modules, imported (migrations aside: Alembic loads those)."""
        loaded = {}
        for path in self.files():
            relative = path.relative_to(self.package_dir).with_suffix("")
            if relative.parts[0] == "migrations":
                continue
            parts = [p for p in relative.parts if p != "__init__"]
            name = ".".join([self.package, *parts])
            loaded[name] = importlib.import_module(name)
        return loaded

    def assignments(self, predicate: Callable[[Any], bool]) -> Iterator[tuple[Any, Path, int]]:
        """Module-level values of the package that ``predicate`` accepts, with the line
        that assigns each (its own module's, not a module importing it)."""
        for module in self.modules.values():
            path = Path(module.__file__ or "")
            for node in self.tree(path).body:
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        value = getattr(module, target.id, None)
                        if predicate(value):
                            yield value, path, node.lineno

    @cached_property
    def definition_location(self) -> tuple[Path, int]:
        for _, path, line in self.assignments(lambda v: v is self.definition):
            return path, line
        return self.package_dir / "__init__.py", 1

    @cached_property
    def scratch(self) -> Path:
        """A folder of the check's own, for throw-away databases; gone with the process."""
        self._scratch = tempfile.TemporaryDirectory(prefix=f"lkern-check-{self.name}-")
        return Path(self._scratch.name)

    def settings(self, database: str) -> Settings:
        """The service's settings on a throw-away SQLite database in :attr:`scratch`."""
        return self.definition.settings_class(
            env=Environment.TEST,
            data_dir=self.scratch,
            database_url=f"sqlite+aiosqlite:///{self.scratch / database}",
            broker_url=f"memory://check-{self.name}",
        )

    def app(self, definition: ServiceDefinition | None = None) -> FastAPI:
        """The service's app, built as it is served but never started."""
        # Imported here: the app factory pulls in the whole runtime, which the
        # source-only rules do not need.
        from lkern.platform.app import create_app

        return create_app(definition or self.definition, self.settings("app.db"), migrate=False)

    @cached_property
    def served(self) -> ServiceDefinition:
        """The definition as far as it can be served: without the routes the app
        factory would refuse (the route rules report those)."""
        return without_unguarded(self.definition)

    @cached_property
    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of the service's app."""
        return self.app(self.served).openapi()

    @cached_property
    def own_routes(self) -> list[APIRoute]:
        """The service's routes in its app (the platform adds health, docs and the like)."""
        return list(api_routes([*self.served.routers, *self.served.public_routers]))
