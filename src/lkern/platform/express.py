"""An express lane through FastAPI for the plainest requests.

FastAPI solves every request's parameters and dependencies afresh: for a GET
by id that is most of the framework's part of the request (docs/benchmarks.md).
Yet for a request with no query string, on a route that takes only path
parameters, optional query parameters, the response and dependencies that
need nothing but the request, every value FastAPI would produce is known
without solving: the path parameters as Starlette's converters made them, the
query parameters' defaults, and what each dependency returns. Such a request
takes the express lane, which computes exactly those values, calls the same
endpoint and serializes with FastAPI's own function; every other request (a
query string, another method, a route not marked for the lane) goes through
FastAPI as before. Errors raised on the lane reach the same exception
handlers, so answers are the same either way (tests/api/test_express.py
compares them route by route).

A POST, PUT or PATCH whose one parameter from the body is a model takes the
lane only with a body that is plainly JSON (``Content-Type:
application/json``) and valid for that model, validated by FastAPI's own
field; any other body (malformed, invalid, of another type, absent) is
handed to FastAPI untouched, so every refusal is FastAPI's. The body is
validated before any dependency runs, so either way each runs once.

A route takes the lane only when it is declared for it
(``router.get(..., express=True)`` on the platform's routers, routers.py).
Whether it can is worked out from FastAPI's internals (their version is
pinned by uv.lock), so the lane serves the routes someone chose and the
equivalence test covers, never whatever happens to qualify; a marked route
that does not qualify is refused as it is declared, with the reason. Each app
opens the lane in ``add_routes`` unless the ``express_lane`` setting is off
(``LKERN_EXPRESS_LANE=false``). The lane knows only the dependencies in the
route's own dependant, so the platform opens it only on routes it adds to an
app directly, never through ``include_router`` (whose dependencies FastAPI
keeps elsewhere).
"""

from __future__ import annotations

import inspect
import json
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi import params as params_module
from fastapi._compat import ModelField
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starlette.types import Message, Receive, Scope, Send

from lkern.platform.bodies import replay
from lkern.platform.errors import ConfigurationError

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
    #: The parameter taking the body, and FastAPI's field validating it.
    body_name: str | None = None
    body_field: ModelField | None = None


#: The methods the lane serves; those with a body take one only as a model.
_LANE_METHODS = ({"GET"}, {"POST"}, {"PUT"}, {"PATCH"})
_JSON = b"application/json"


def _is_coroutine_callable(call: object) -> bool:
    if inspect.iscoroutinefunction(call):
        return True
    dunder = getattr(type(call), "__call__", None)  # noqa: B004
    return not inspect.isclass(call) and inspect.iscoroutinefunction(dunder)


def _beyond_path_and_query(dependant: Dependant, *, body: bool = False) -> str | None:
    """What FastAPI must read or build, beyond path and query (and the body, if
    ``body``), to call ``dependant`` (headers, cookies, special arguments): what
    the lane never does. ``None`` when there is nothing."""
    needs = {
        "is not a coroutine function": not _is_coroutine_callable(dependant.call),
        "reads headers": bool(dependant.header_params),
        "reads cookies": bool(dependant.cookie_params),
        "reads a body": bool(dependant.body_params) and not body,
        "takes background tasks": dependant.background_tasks_param_name is not None,
        "takes security scopes": dependant.security_scopes_param_name is not None,
        "takes a websocket": dependant.websocket_param_name is not None,
        "takes the HTTP connection": dependant.http_connection_param_name is not None,
    }
    return next((need for need, present in needs.items() if present), None)


def _beyond_the_request(dependant: Dependant) -> str | None:
    """Why the lane cannot call dependency ``dependant`` with the request alone, if it cannot."""
    needs = {
        "is not cached per request": not dependant.use_cache,
        "has dependencies of its own": bool(dependant.dependencies),
        "reads path or query parameters": bool(dependant.path_params or dependant.query_params),
        "takes the response": dependant.response_param_name is not None,
    }
    beyond = _beyond_path_and_query(dependant)
    return beyond or next((need for need, present in needs.items() if present), None)


def _name_of(call: object) -> str:
    return getattr(call, "__qualname__", None) or type(call).__qualname__


def _validated(field: ModelField, raw: bytes) -> Any:
    """The body as FastAPI would hand it to the endpoint; None where FastAPI would
    refuse it, or where its way of reading it is not JSON's."""
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    value, errors = field.validate(document, {}, loc=("body",))
    return None if errors else value


class NoLane(ConfigurationError):
    """A route marked for the express lane that the lane cannot serve."""

    def __init__(self, route: APIRoute, reason: str) -> None:
        methods = ",".join(sorted(route.methods or ())) or "?"
        super().__init__(
            f"{methods} {route.path} is marked for the express lane, but {reason}: "
            "drop express=True or make the route plain"
        )


def plan_lane(route: APIRoute) -> _Lane:
    """The lane for ``route``; :class:`NoLane` when a plain request to it still needs FastAPI."""
    dependant = route.dependant
    if route.methods not in _LANE_METHODS:
        raise NoLane(route, "the lane serves one of GET, POST, PUT and PATCH")
    body_name, body_field = _body_of(route)
    if route.response_field is None:
        raise NoLane(route, "it has no response model to serialize with")
    if not isinstance(route.response_class, DefaultPlaceholder):
        raise NoLane(route, "it names its own response class")
    beyond = _beyond_path_and_query(dependant, body=body_field is not None)
    if beyond is not None:
        raise NoLane(route, f"the endpoint {beyond}")
    path_params = []
    for field in dependant.path_params:
        convertor = route.param_convertors.get(field.alias)
        if (
            field.name != field.alias
            or convertor is None
            or _CONVERTED_TYPES.get(type(convertor)) is not field.field_info.annotation
            or field.field_info.metadata
        ):
            raise NoLane(
                route,
                f"path parameter {field.alias} is not taken exactly as its converter gives it",
            )
        path_params.append(field.name)
    defaults = {}
    for field in dependant.query_params:
        info = field.field_info
        # Shared by every request, so only a default nobody can change in place.
        if info.is_required() or not isinstance(info.default, _IMMUTABLE_DEFAULTS):
            raise NoLane(
                route, f"query parameter {field.alias} is required or its default is mutable"
            )
        defaults[field.name] = info.default
    dependencies: dict[Dependency, _Call] = {}
    for sub in dependant.dependencies:
        call = sub.call
        reason = "has no callable" if call is None else _beyond_the_request(sub)
        if call is None or reason is not None:
            raise NoLane(route, f"dependency {_name_of(call)} {reason}")
        known = dependencies.get(call) or _Call(call, sub.request_param_name, ())
        if sub.name is not None:
            known = _Call(known.call, known.request_name, (*known.targets, sub.name))
        dependencies[call] = known
    return _Lane(
        dependencies=tuple(dependencies.values()),
        path_params=tuple(path_params),
        defaults=defaults,
        request_name=dependant.request_param_name,
        response_name=dependant.response_param_name,
        body_name=body_name,
        body_field=body_field,
    )


def _body_of(route: APIRoute) -> tuple[str | None, ModelField | None]:
    """The parameter taking the body of a POST, PUT or PATCH, and its field."""
    if route.methods == {"GET"}:
        return None, None
    params = route.dependant.body_params
    if len(params) != 1 or route._embed_body_fields or route.body_field is None:
        raise NoLane(route, "its body is not one parameter taking the whole body")
    [param] = params
    if not param.field_info.is_required() or isinstance(param.field_info, params_module.Form):
        raise NoLane(route, f"its body parameter {param.name} is optional or a form")
    annotation = param.field_info.annotation
    if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        raise NoLane(route, f"its body parameter {param.name} is not a model")
    return param.name, route.body_field


def _plain_json(scope: Scope) -> bool:
    """Whether the request says its body is JSON in the one plain way."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.lower() == _JSON)
    return False


class ExpressRoute(APIRoute):
    """A GET route marked for the express lane: planned when declared, served on the
    lane in the apps that open it.

    Routes are declared once at import and may be added to several apps (each
    service has the platform's routes; tests build many apps), so the lane is
    open per app, not per route.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self._lane = plan_lane(self)
        # Weakly, so apps built and dropped (tests) are not kept alive by their routes.
        self._open_in: weakref.WeakSet[object] = weakref.WeakSet()

    def open_lane(self, app: object) -> None:
        """Serve plain requests to this route on the lane when ``app`` receives them."""
        self._open_in.add(app)

    def lane_open_in(self, app: object) -> bool:
        return app in self._open_in

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self._lane
        if (
            scope["query_string"]
            or scope["method"] not in (self.methods or ())
            or scope.get("app") not in self._open_in
            or self._overridden()
        ):
            await super().handle(scope, receive, send)
            return
        request = Request(scope, receive, send)
        body: Any = None
        if lane.body_field is not None:
            if not _plain_json(scope):
                await super().handle(scope, receive, send)
                return
            try:
                raw = await request.body()
            except Exception as exc:
                # As FastAPI answers a body it could not read (the client gone).
                raise HTTPException(400, "There was an error parsing the body") from exc
            body = _validated(lane.body_field, raw)
            if body is None:
                # FastAPI reads what was read again, and answers as it would have.
                again: deque[Message] = deque(
                    [{"type": "http.request", "body": raw, "more_body": False}]
                )
                await super().handle(scope, replay(again, receive), send)
                return
        response = await self._run(lane, request, body)
        await response(scope, receive, send)

    def _overridden(self) -> bool:
        provider = self.dependency_overrides_provider
        return bool(getattr(provider, "dependency_overrides", None))

    async def _run(self, lane: _Lane, request: Request, body: Any = None) -> Response:
        values: dict[str, Any] = dict(lane.defaults)
        if lane.body_name is not None:
            values[lane.body_name] = body
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
