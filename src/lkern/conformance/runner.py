"""Every rule over every service asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from lkern.conformance.events import check_events
from lkern.conformance.imports import check_imports
from lkern.conformance.lists import check_lists
from lkern.conformance.migrations import check_migrations
from lkern.conformance.routes import check_guards, check_problems
from lkern.conformance.source import check_print
from lkern.conformance.subject import Subject, Violation
from lkern.platform.service import ServiceDefinition

Rule = Callable[[Subject], Iterator[Violation]]

#: In the order a developer fixes things: what keeps the app from starting first.
RULES: tuple[Rule, ...] = (
    check_guards,
    check_problems,
    check_lists,
    check_events,
    check_imports,
    check_print,
    check_migrations,
)


def check_service(
    definition: ServiceDefinition,
    registered: Mapping[str, ServiceDefinition],
    rules: Iterable[Rule] = RULES,
) -> list[Violation]:
    """Every violation of ``definition``; ``registered`` are the installation's services,
    whose packages it may not import. The migration rules run Alembic, which drives an
    event loop of its own: from async code, call this in a thread."""
    subject = Subject(definition, {**registered, definition.name: definition})
    found: list[Violation] = []
    for rule in rules:
        found.extend(rule(subject))
    return sorted(set(found))


def check(
    definitions: Iterable[ServiceDefinition], registered: Mapping[str, ServiceDefinition]
) -> list[Violation]:
    return [v for d in definitions for v in check_service(d, registered)]
