"""The express lane answers exactly as FastAPI does (platform/express.py), route by route.

The routes are found, not listed: every route marked for the lane in the app
of every service in ``lkern.services.SERVICES``, each in every case that
applies to it (a success; no token and a forged one on a protected route; a
role too low where it needs more than a viewer; an unknown id where it has a
path id; the database down; and for a route with a body, bodies the lane must
hand to FastAPI: invalid, malformed, of another content type, absent). Each
request is sent twice: plain, which takes the lane, and with a query
parameter no route reads, which FastAPI ignores but which sends the request
through FastAPI's own handling. Status, headers and body must be the same;
a successful creation is sent with two bodies differing only in their unique
values, and the answers may differ only in what those and the new resource's
id and time make different.
"""

from __future__ import annotations

import functools
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.convertors import UUIDConvertor

from lkern.conformance.routes import reaches_database
from lkern.platform.app import create_app
from lkern.platform.auth import BearerAuthorization, Role
from lkern.platform.db import create_engine, is_postgres, read_session_factory, session_factory
from lkern.platform.errors import ConfigurationError
from lkern.platform.express import ExpressRoute
from lkern.platform.reads import Reader
from lkern.platform.routers import add_routes, is_protected, public_router
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.settings import Environment
from lkern.services import SERVICES
from tests.api.test_contacts import create
from tests.api.test_identity import bearer as bearer_of
from tests.api.test_identity import login
from tests.api.test_orders import new_order
from tests.conftest import Fleet, ServiceUnderTest
from tests.support.tokens import mint, minted_token_verifier, trust_test_key

# Nothing listens there: connecting is refused at once.
CLOSED_PORT = 9


# -- the routes, as the app factory builds each service's app ---------------------------------


def _apps() -> Iterator[tuple[str, FastAPI]]:
    with tempfile.TemporaryDirectory() as tmp:
        for name, definition in SERVICES.items():
            settings = definition.settings_class(
                env=Environment.TEST, data_dir=Path(tmp), broker_url="memory://discovery"
            )
            # Built, never started: nothing connects.
            yield name, create_app(definition, settings, migrate=False)


def required_role(route: ExpressRoute) -> Role | None:
    """The least role a token needs on ``route``; ``None`` for a public route."""
    # Without a role of its own, a GET needs a viewer and a change a member.
    by_method = Role.VIEWER if route.methods == {"GET"} else Role.MEMBER
    roles = [
        sub.call.role or by_method
        for sub in route.dependant.dependencies
        if isinstance(sub.call, BearerAuthorization)
    ]
    return max(roles, key=lambda role: role.rank) if roles else None


@dataclass(frozen=True)
class Case:
    service: str
    path: str
    kind: str

    @property
    def id(self) -> str:
        return f"{self.service} {self.path} {self.kind}"


def _cases_of(service: str, route: ExpressRoute) -> Iterator[Case]:
    role = required_role(route)
    kinds = ["success", "database down"]
    if role is not None:
        kinds += ["no token", "forged token"]
    if role is not None and role is not Role.VIEWER:
        kinds.append("role too low")
    if route.param_convertors:
        kinds.append("unknown id")
    if route.methods != {"GET"}:
        kinds += ["invalid body", "malformed body", "not JSON", "no body"]
    for kind in kinds:
        yield Case(service, route.path, kind)


def _all_cases() -> list[Case]:
    return [
        case
        for name, app in _apps()
        for route in app.router.routes
        if isinstance(route, ExpressRoute)
        for case in _cases_of(name, route)
    ]


CASES = _all_cases()


def test_every_service_has_marked_routes():
    # At least /config/log-level, which every service has: an empty
    # discovery would leave the equivalence test nothing to run.
    assert {case.service for case in CASES} == set(SERVICES)


# -- what an example request needs ------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """Values for a successful request: existing resources' ids and the calling user."""

    path_values: dict[str, str] = field(default_factory=dict)
    subject: str | None = None


#: A valid body for each marked route that takes one, new at each call (its unique
#: values of the same length, so two answers differ in nothing else), and the
#: fields of the answer those values and the creation make differ.
BODIES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("contacts", "/api/v1/contacts"): lambda: {
        "name": "Lane Either Way",
        "email": f"{uuid.uuid4().hex}@example.com",
        "phone": f"+4915100{uuid.uuid4().int % 10**6:06d}",
        "company": "Lanes Ltd",
    },
}
DIFFERING_FIELDS = {"id", "email", "phone", "created_at", "updated_at"}
DIFFERING_HEADERS = {"location", "content-length", "etag"}


Services = dict[str, ServiceUnderTest]


async def _identity_example(services: Services) -> Example:
    async with services["identity"].client(role=None) as client:
        admin = bearer_of((await login(client))["access_token"])
        me = (await client.get("/api/v1/users/me", headers=admin)).json()
    return Example({"user_id": me["id"]}, subject=me["id"])


async def _contacts_example(services: Services) -> Example:
    async with services["contacts"].client() as client:
        contact = await create(client)
    return Example({"contact_id": contact["id"]})


async def _orders_example(services: Services) -> Example:
    contacts, orders = services["contacts"], services["orders"]
    async with contacts.client() as contacts_client, orders.client() as orders_client:
        order = await new_order(orders_client, (await create(contacts_client))["id"])
    return Example({"order_id": order["id"]})


#: How to get existing resources for a service's marked routes. Only a route
#: with a path id (or one that reads the calling user) needs one; the test
#: says so when a service has such a route and no entry here.
EXAMPLES: dict[str, Callable[[Services], Awaitable[Example]]] = {
    "identity": _identity_example,
    "contacts": _contacts_example,
    "orders": _orders_example,
}


async def _no_example(_: Services) -> Example:
    return Example()


@pytest.fixture
async def services(fleet: Fleet) -> Services:
    """Every registered service, running on this backend."""
    return {name: await fleet.start(name) for name in SERVICES}


# -- sending a request both ways --------------------------------------------------------------


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the requests the lane served."""
    calls: list[str] = []
    run = ExpressRoute._run

    async def counted(self: ExpressRoute, lane: Any, request: Request, body: Any = None) -> Any:
        calls.append(request.url.path)
        return await run(self, lane, request, body)

    monkeypatch.setattr(ExpressRoute, "_run", counted)
    yield calls


def _comparable(
    response: httpx.Response, *, masked: bool = False
) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k != "traceparent"}
    if masked:
        headers = {k: "" if k in DIFFERING_HEADERS else v for k, v in headers.items()}
    if not response.content:
        return response.status_code, headers, None
    body = response.json()
    if isinstance(body, dict):
        body.pop("trace_id", None)  # each request has its own
        if masked:
            body = {k: "" if k in DIFFERING_FIELDS else v for k, v in body.items()}
    return response.status_code, headers, body


async def same_either_way(
    client: httpx.AsyncClient,
    path: str,
    lane_calls: list[str],
    *,
    method: str = "GET",
    body: Callable[[], Any] | None = None,
    lane: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """Send the request plainly and through FastAPI; ``body`` makes each one's body,
    and ``lane`` says whether the plain one takes the lane."""
    served = len(lane_calls)
    first = {} if body is None else body()
    express = await client.request(method, path, **(kwargs | first))
    expected = [path] if lane else []
    assert lane_calls[served:] == expected, f"the plain request took the lane: {not lane}"
    second = {} if body is None else body()
    framework = await client.request(
        method, path, params={"not_a_parameter": "1"}, **(kwargs | second)
    )
    assert len(lane_calls) == served + len(expected), (
        "the request with a query string took the lane"
    )
    masked = first != second
    assert _comparable(express, masked=masked) == _comparable(framework, masked=masked)
    return express


@asynccontextmanager
async def database_down(runtime: ServiceRuntime, tmp_path: Path) -> AsyncIterator[None]:
    """The service's database unreachable: its sessions and reads go to a server that
    refuses connections (PostgreSQL) or to a file that cannot be opened (SQLite)."""
    url = runtime.engine.url
    dead = (
        url.set(host="127.0.0.1", port=CLOSED_PORT)
        if is_postgres(runtime.engine)
        else url.set(database=str(tmp_path))  # a directory, which SQLite cannot open
    )
    settings = runtime.settings.model_copy(
        update={"database_url": dead.render_as_string(hide_password=False)}
    )
    engine = create_engine(settings, runtime.name)
    reader = Reader(engine, settings, runtime.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "sessions", session_factory(engine))
        patch.setattr(runtime, "read_sessions", read_session_factory(engine))
        patch.setattr(runtime, "reader", reader)
        try:
            yield
        finally:
            await reader.close()
            await engine.dispose()


def _unknown(route: ExpressRoute, name: str) -> str:
    if not isinstance(route.param_convertors[name], UUIDConvertor):
        pytest.fail(f"{route.path}: no unknown value is known for path parameter {name}")
    return str(uuid.uuid4())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
async def test_the_lane_answers_as_fastapi(
    case: Case,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    lane_calls: list[str],
    tmp_path: Path,
):
    service = services[case.service]
    [route] = [
        r for r in service.app.router.routes if isinstance(r, ExpressRoute) and r.path == case.path
    ]
    assert route.lane_open_in(service.app)
    example = await EXAMPLES.get(case.service, _no_example)(services)
    # Every service trusts the tokens minted here (identity otherwise only its own).
    monkeypatch.setattr(service.runtime, "verifier", minted_token_verifier())
    missing = set(route.param_convertors) - set(example.path_values)
    if case.kind in ("success", "database down") and missing:
        pytest.fail(f"EXAMPLES has no {case.service} resource for {sorted(missing)}: add one")
    role = required_role(route)
    subject = example.subject
    values = {name: example.path_values.get(name, "") for name in route.param_convertors}
    headers = {} if role is None else {"Authorization": f"Bearer {mint(role, subject=subject)}"}
    success = route.status_code or 200
    expected = success
    if case.kind == "no token":
        headers, expected = {}, 401
    elif case.kind == "forged token":
        headers, expected = {"Authorization": "Bearer not.a.token"}, 401
    elif case.kind == "role too low":
        assert role is not None
        lower = list(Role)[role.rank - 1]
        headers, expected = {"Authorization": f"Bearer {mint(lower, subject=subject)}"}, 403
    elif case.kind == "unknown id":
        values, expected = {name: _unknown(route, name) for name in values}, 404
    path = route.path_format.format(**values)
    [method] = route.methods or {"GET"}
    body = _body_case(case, route, headers)
    if case.kind in ("invalid body", "not JSON", "no body"):
        expected = 422
    elif case.kind == "malformed body":
        expected = 400
    lane = case.kind not in ("invalid body", "malformed body", "not JSON", "no body")
    async with service.client(role=None) as client:
        send = functools.partial(
            same_either_way, client, path, lane_calls, method=method, body=body, lane=lane
        )
        if case.kind == "database down":
            # A route that reaches the database answers 503 while it is down; one
            # that does not must not need it. (Every protected route documents 503
            # anyway: identity's keys may be out of reach.)
            expected = 503 if reaches_database(route) else success
            async with database_down(service.runtime, tmp_path):
                response = await send(headers=headers)
        else:
            response = await send(headers=headers)
    assert response.status_code == expected, response.text


def _body_case(
    case: Case, route: ExpressRoute, headers: dict[str, str]
) -> Callable[[], dict[str, Any]] | None:
    """What each request of ``case`` sends as its body (None: no body, a GET)."""
    if route.methods == {"GET"}:
        return None
    valid = BODIES.get((case.service, case.path))
    if valid is None:
        pytest.fail(f"BODIES has no body for {case.service} {case.path}: add one")
    if case.kind == "success":
        return lambda: {"json": valid()}
    if case.kind == "invalid body":
        return lambda: {"json": {**valid(), "name": "", "unknown_field": 1}}
    if case.kind == "malformed body":
        return lambda: {"content": b'{"name": "A",', "headers": {**headers, **_JSON}}
    if case.kind == "not JSON":
        text = {**headers, "Content-Type": "text/plain"}
        return lambda: {"content": json.dumps(valid()).encode(), "headers": text}
    if case.kind == "no body":
        return lambda: {"headers": {**headers, **_JSON}}
    # Refused before the body is used, or (database down) after: the same body twice.
    same = valid()
    return lambda: {"json": same}


_JSON = {"Content-Type": "application/json"}


# -- the switch and the marking ---------------------------------------------------------------


async def test_the_switch_turns_the_lane_off(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lane_calls: list[str],
    contacts_service: ServiceUnderTest,
):
    monkeypatch.setenv("LKERN_EXPRESS_LANE", "false")
    settings = SERVICES["contacts"].load_settings(
        env=Environment.TEST, data_dir=tmp_path, broker_url="memory://switched-off"
    )
    app = create_app(SERVICES["contacts"], settings, migrate=False)
    trust_test_key(app.state.runtime)
    marked = [route for route in app.router.routes if isinstance(route, ExpressRoute)]
    assert marked
    assert not any(route.lane_open_in(app) for route in marked)
    # The same route objects still take the lane in the apps that kept it on.
    assert all(route.lane_open_in(contacts_service.app) for route in marked)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(
            "/config/log-level", headers={"Authorization": f"Bearer {mint('viewer')}"}
        )
    assert response.status_code == 200
    assert lane_calls == []


def test_the_switch_is_per_service_too(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LKERN_ORDERS_EXPRESS_LANE", "false")
    assert SERVICES["contacts"].load_settings().express_lane
    assert not SERVICES["orders"].load_settings().express_lane


async def test_a_route_without_a_check_is_refused():
    router = public_router(prefix="/open")

    @router.get("/door")
    async def door() -> dict[str, str]:
        return {}

    with pytest.raises(ConfigurationError, match="GET /open/door has no protected check"):
        add_routes(FastAPI(), [router], guard=is_protected, express_lane=True)
