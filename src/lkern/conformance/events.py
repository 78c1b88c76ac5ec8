"""Every event a service emits has a registered schema in the shared events package (§5)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lkern.conformance.subject import Subject, Violation
from lkern.events import EventData, UnknownEventType, lookup

UNREGISTERED = "EVENT-UNREGISTERED"
UNDECLARED = "EVENT-UNDECLARED"


def registered(cls: type[EventData]) -> bool:
    try:
        return lookup(getattr(cls, "event_type", "")) is cls
    except UnknownEventType:
        return False


def _name(cls: type[EventData]) -> str:
    return getattr(cls, "event_type", None) or cls.__name__


def _event_class(value: Any) -> type[EventData] | None:
    return value if inspect.isclass(value) and issubclass(value, EventData) else None


def _emitted_in_code(subject: Subject) -> Iterator[tuple[type[EventData], Path, int]]:
    """Events the service's functions hand to ``emit`` (``uow.emit(Created(...), id)``)."""
    for module in subject.modules.values():
        path = Path(module.__file__ or "")
        for node in ast.walk(subject.tree(path)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "emit"
                and node.args
                and isinstance(node.args[0], ast.Call)
            ):
                continue
            made = node.args[0].func
            # Created(...) or Created.model_validate(...)
            for candidate in (made, getattr(made, "value", None)):
                if isinstance(candidate, ast.Name):
                    cls = _event_class(vars(module).get(candidate.id))
                    if cls is not None:
                        yield cls, path, node.lineno
                        break


def _held(value: Any, depth: int = 2) -> Iterator[type[EventData]]:
    """Event classes a dataclass value holds, a level down too: a resource kind's
    lifecycle events, a file slot's added and removed, which the platform emits."""
    if depth == 0 or not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for item in dataclasses.fields(value):
        held = getattr(value, item.name, None)
        cls = _event_class(held)
        if cls is not None:
            yield cls
        else:
            yield from _held(held, depth - 1)


def _emitted_by_the_platform(subject: Subject) -> Iterator[tuple[type[EventData], Path, int]]:
    for value, path, line in subject.assignments(dataclasses.is_dataclass):
        if value is subject.definition:
            continue
        for cls in _held(value):
            yield cls, path, line


def check_events(subject: Subject) -> Iterator[Violation]:
    definition = subject.definition
    path, line = subject.definition_location
    for cls in definition.produces:
        if not registered(cls):
            yield Violation(
                path,
                line,
                UNREGISTERED,
                f"{definition.name} produces {_name(cls)} ({cls.__name__}), which has no "
                "schema registered in the events package (@event)",
            )
    declared = set(definition.produces)
    reported: set[tuple[type[EventData], Path, int]] = set()
    for found in [*_emitted_in_code(subject), *_emitted_by_the_platform(subject)]:
        cls, where, at = found
        if found in reported:
            continue
        reported.add(found)
        if not registered(cls):
            yield Violation(
                where,
                at,
                UNREGISTERED,
                f"emits {_name(cls)} ({cls.__name__}), which has no schema registered in the "
                "events package (@event)",
            )
        elif cls not in declared:
            yield Violation(
                where,
                at,
                UNDECLARED,
                f"emits {cls.event_type}, which {definition.name}'s definition does not list in "
                "produces (its topic would not be created, nor documented)",
            )
