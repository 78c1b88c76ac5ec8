"""An express lane through FastAPI for the plainest requests.

FastAPI solves every request's parameters and dependencies afresh: for a GET
by id that is most of the framework's part of the request (docs/benchmarks.md).
Yet for a GET with no query string, on a route that takes only path
parameters, optional query parameters, the response and dependencies that
need nothing but the request, every value FastAPI would produce is known
without solving: the path parameters as Starlette's converters made them, the
query parameters' defaults, and what each dependency returns. Such a request
takes the express lane, which computes exactly those values, calls the same
endpoint and serializes with FastAPI's own function; every other request (a
query string, another method, a route the lane cannot serve) goes through
FastAPI as before. Errors raised on the lane reach the same exception
handlers, so answers are the same either way (tests/api/test_express.py
compares them route by route).

The lane only knows the dependencies in the route's own dependant, so the
platform opens it only on routes it adds to an app directly, never through
``include_router`` (whose dependencies FastAPI keeps elsewhere).
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starlette.types import Receive, Scope, Send

Dependency = Callable[..., Awaitable[Any]]

# What each of Starlette's path converters hands over: a path parameter
# annotated with exactly that type passes FastAPI's validation unchanged.
_CONVERTED_TYPES: dict[type[Convertor[Any]], type] = {
    UUIDConvertor: uuid.UUID,
    IntegerConvertor: int,
    FloatConvertor: float,
    StringConvertor: str,
    PathConvertor: str,
}


_IMMUTABLE_DEFAULTS = (type(None), bool, int, float, str, Enum, uuid.UUID)


@dataclass(frozen=True, slots=True)
class _Call:
    """One dependency, called once as FastAPI would call it (its result cached)."""

    call: Dependency
    #: The dependency's own argument taking the request, if it has one.
    request_name: str | None
    #: The endpoint arguments taking its value; none for a route's
    #: ``dependencies=``, which run for their effect.
    targets: tuple[str, ...]

    async def __call__(self, request: Request) -> Any:
        if self.request_name is None:
            return await self.call()
        return await self.call(**{self.request_name: request})


@dataclass(frozen=True, slots=True)
class _Lane:
    """What a plain request to one route needs, worked out once."""

    dependencies: tuple[_Call, ...]
    path_params: tuple[str, ...]
    defaults: dict[str, Any]
    request_name: str | None
    response_name: str | None


def _is_coroutine_callable(call: object) -> bool:
    if inspect.iscoroutinefunction(call):
        return True
    dunder = getattr(type(call), "__call__", None)  # noqa: B004
    return not inspect.isclass(call) and inspect.iscoroutinefunction(dunder)


def _needs_more_than_path_and_query(dependant: Dependant) -> bool:
    """Whether FastAPI must read headers, cookies or a body, or build special
    arguments, to call ``dependant``: what the lane never does."""
    return bool(
        not _is_coroutine_callable(dependant.call)
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.background_tasks_param_name is not None
        or dependant.security_scopes_param_name is not None
        or dependant.websocket_param_name is not None
        or dependant.http_connection_param_name is not None
    )


def _takes_only_the_request(dependant: Dependant) -> bool:
    return not (
        _needs_more_than_path_and_query(dependant)
        or not dependant.use_cache
        or dependant.dependencies
        or dependant.path_params
        or dependant.query_params
        or dependant.response_param_name is not None
    )


def plan_lane(route: APIRoute) -> _Lane | None:
    """The lane for ``route``, or ``None`` when a plain request to it still needs FastAPI."""
    dependant = route.dependant
    if (
        "GET" not in (route.methods or ())
        or route.response_field is None
        or not isinstance(route.response_class, DefaultPlaceholder)
        or _needs_more_than_path_and_query(dependant)
    ):
        return None
    path_params = []
    for field in dependant.path_params:
        convertor = route.param_convertors.get(field.alias)
        if (
            field.name != field.alias
            or convertor is None
            or _CONVERTED_TYPES.get(type(convertor)) is not field.field_info.annotation
            or field.field_info.metadata
        ):
            return None
        path_params.append(field.name)
    defaults = {}
    for field in dependant.query_params:
        info = field.field_info
        # Shared by every request, so only a default nobody can change in place.
        if info.is_required() or not isinstance(info.default, _IMMUTABLE_DEFAULTS):
            return None
        defaults[field.name] = info.default
    dependencies: dict[Dependency, _Call] = {}
    for sub in dependant.dependencies:
        if sub.call is None or not _takes_only_the_request(sub):
            return None
        known = dependencies.get(sub.call) or _Call(sub.call, sub.request_param_name, ())
        if sub.name is not None:
            known = _Call(known.call, known.request_name, (*known.targets, sub.name))
        dependencies[sub.call] = known
    return _Lane(
        dependencies=tuple(dependencies.values()),
        path_params=tuple(path_params),
        defaults=defaults,
        request_name=dependant.request_param_name,
        response_name=dependant.response_param_name,
    )


class ExpressRoute(APIRoute):
    """An ``APIRoute`` that serves plain requests on the express lane once it is opened."""

    _lane: _Lane | None = None

    def open_lane(self) -> None:
        """Open the lane, if this route can have one."""
        self._lane = plan_lane(self)

    @property
    def has_lane(self) -> bool:
        return self._lane is not None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self._lane
        if lane is None or scope["query_string"] or scope["method"] != "GET" or self._overridden():
            await super().handle(scope, receive, send)
            return
        response = await self._run(lane, Request(scope, receive, send))
        await response(scope, receive, send)

    def _overridden(self) -> bool:
        provider = self.dependency_overrides_provider
        return bool(getattr(provider, "dependency_overrides", None))

    async def _run(self, lane: _Lane, request: Request) -> Response:
        values: dict[str, Any] = dict(lane.defaults)
        path_params = request.path_params
        for name in lane.path_params:
            values[name] = path_params[name]
        for dependency in lane.dependencies:
            value = await dependency(request)
            for name in dependency.targets:
                values[name] = value
        if lane.request_name is not None:
            values[lane.request_name] = request
        # As FastAPI does: headers and status the endpoint sets on this
        # response are carried over to the one sent.
        sub_response = Response()
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        if lane.response_name is not None:
            values[lane.response_name] = sub_response
        result = await self.dependant.call(**values)  # type: ignore[misc]
        if isinstance(result, Response):
            return result
        content = await serialize_response(
            field=self.response_field,
            response_content=result,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
            dump_json=True,
        )
        status_code = sub_response.status_code or self.status_code or 200
        response = Response(content, status_code=status_code, media_type="application/json")
        if not is_body_allowed_for_status_code(status_code):
            response.body = b""
        response.headers.raw.extend(sub_response.headers.raw)
        return response
