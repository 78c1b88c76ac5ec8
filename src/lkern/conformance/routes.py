"""Rules of a service's routes: each guarded, each problem it can answer documented."""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lkern.conformance.guards import describe, unguarded
from lkern.conformance.subject import Subject, Violation, source_location
from lkern.platform.errors import DomainError
from lkern.platform.runtime import get_runtime, get_uow

UNGUARDED = "ROUTE-UNGUARDED"
UNDOCUMENTED = "PROBLEM-UNDOCUMENTED"


def check_guards(subject: Subject) -> Iterator[Violation]:
    for route, why in unguarded(subject.definition):
        path, line = source_location(route.endpoint)
        yield Violation(path, line, UNGUARDED, f"{describe(route)} {why}")


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> Any:
    """The object a name or dotted name in a function refers to, read without running
    anything (no properties, no ``__getattr__``)."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        if base is None:
            return None
        try:
            found = inspect.getattr_static(base, node.attr)
        except AttributeError:
            return None
        if isinstance(found, staticmethod | classmethod):
            return found.__func__
        return found
    return None


class RaisedErrors:
    """The domain errors the service's own functions can raise, found by reading them
    and the functions of the service they call, however deep.

    A function counts an error class it names anywhere but in an ``except``
    clause: raised, or built and handed back to a caller that raises it.
    The platform's functions are not followed: theirs raise on what the
    request brings (``check_version`` a 412 only given ``If-Match``), which
    :func:`expected_problems` reads from the request's shape instead, and
    the platform's own routes document what they answer.
    """

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self._found: dict[Any, dict[int, str]] = {}

    def of(self, function: Callable[..., Any]) -> dict[int, str]:
        """Each status the function can answer with, and which error of which function."""
        statuses: dict[int, str] = {}
        self._visit(inspect.unwrap(function), statuses, set())
        return statuses

    def _visit(self, function: Any, statuses: dict[int, str], seen: set[Any]) -> None:
        code = getattr(function, "__code__", None)
        if code is None or code in seen or not self.subject.owns(function.__module__ or ""):
            return
        seen.add(code)
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        except (OSError, TypeError, SyntaxError):
            return
        handled = {
            id(name)
            for handler in ast.walk(tree)
            if isinstance(handler, ast.ExceptHandler) and handler.type is not None
            for name in ast.walk(handler.type)
        }
        namespace = {**function.__globals__, **_closure(function)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Name | ast.Attribute) or id(node) in handled:
                continue
            value = _resolve(node, namespace)
            if inspect.isclass(value) and issubclass(value, DomainError):
                statuses.setdefault(
                    value.status,
                    f"{value.__name__} in {function.__module__}.{function.__qualname__}",
                )
            elif inspect.isfunction(value):
                self._visit(value, statuses, seen)


def _closure(function: Any) -> dict[str, Any]:
    cells = function.__closure__ or ()
    values = {}
    for name, cell in zip(function.__code__.co_freevars, cells, strict=False):
        try:
            values[name] = cell.cell_contents
        except ValueError:  # not yet bound
            continue
    return values


def reaches_database(route: APIRoute) -> bool:
    """Whether the route's dependencies hand it the database (a unit of work or the
    runtime): such a route answers 503 while its database is down."""
    return bool(set(_calls(route.dependant)) & {get_uow, get_runtime})


def expected_problems(
    route: APIRoute, operation: dict[str, Any], raised: RaisedErrors
) -> dict[int, str]:
    """The problem statuses a route can answer with, each with the reason."""
    reasons: dict[int, str] = {}
    parameters = operation.get("parameters", [])
    body = operation.get("requestBody")
    if parameters or body:
        reasons[422] = "its parameters or body are validated"
    if body and "application/json" in body.get("content", {}):
        reasons[400] = "a body that is not JSON"
    in_path = [p["name"] for p in parameters if p["in"] == "path"]
    if in_path:
        reasons[404] = f"its path's {', '.join(in_path)} may name nothing"
    if any(p["in"] == "header" and p["name"].lower() == "if-match" for p in parameters):
        reasons[412] = "it takes If-Match"
    if operation.get("security"):
        reasons[401] = "it needs a token"
        reasons[403] = "it needs a role"
        reasons[503] = "its token is checked with identity's keys, fetched from identity"
    reasons[429] = "every route is rate-limited"
    calls = set(_calls(route.dependant))
    if reaches_database(route):
        reasons[503] = "it reaches the database"
    for function in [route.endpoint, *calls]:
        for status, error in raised.of(function).items():
            reasons.setdefault(status, f"it can raise {error}")
    return {status: why for status, why in reasons.items() if status >= 400 and status != 500}


def check_problems(subject: Subject) -> Iterator[Violation]:
    document = subject.openapi
    raised = RaisedErrors(subject)
    for route in subject.own_routes:
        for method in sorted(route.methods or ()):
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            documented = {int(s) for s in operation.get("responses", {}) if s.isdigit()}
            missing = {
                status: why
                for status, why in expected_problems(route, operation, raised).items()
                if status not in documented
            }
            if missing:
                path, line = source_location(route.endpoint)
                listed = "; ".join(f"{status} ({why})" for status, why in sorted(missing.items()))
                yield Violation(
                    path,
                    line,
                    UNDOCUMENTED,
                    f"{method} {route.path} can answer {listed}, which its OpenAPI does not "
                    "document: add them to its responses (problem_responses)",
                )
