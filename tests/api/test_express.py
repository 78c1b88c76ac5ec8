"""The express lane answers exactly as FastAPI does (platform/express.py).

Each request is sent twice: plain, which takes the lane, and with a query
parameter no route reads, which FastAPI ignores but which sends the request
through FastAPI's own handling. Status, headers and body must be the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from lkern.platform.errors import ConfigurationError
from lkern.platform.express import ExpressRoute
from lkern.platform.routers import add_routes, is_protected, public_router
from lkern.services import SERVICES
from tests.api.test_contacts import create
from tests.api.test_identity import bearer as bearer_of
from tests.api.test_identity import login, new_user
from tests.conftest import Fleet
from tests.support.tokens import bearer

CONTACTS = "/api/v1/contacts"


def lane_routes(app: FastAPI) -> set[str]:
    return {
        route.path
        for route in app.router.routes
        if isinstance(route, ExpressRoute) and route.has_lane
    }


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths of the requests the lane served."""
    calls: list[str] = []
    run = ExpressRoute._run

    async def counted(self: ExpressRoute, lane: Any, request: Request) -> Any:
        calls.append(request.url.path)
        return await run(self, lane, request)

    monkeypatch.setattr(ExpressRoute, "_run", counted)
    yield calls


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k != "traceparent"}
    if not response.content:
        return response.status_code, headers, None
    body = response.json()
    if isinstance(body, dict):
        body.pop("trace_id", None)  # each request has its own
    return response.status_code, headers, body


async def same_either_way(
    client: httpx.AsyncClient, path: str, lane_calls: list[str], **kwargs: Any
) -> httpx.Response:
    served = len(lane_calls)
    express = await client.get(path, **kwargs)
    assert lane_calls[served:] == [path], "the plain request did not take the lane"
    framework = await client.get(path, params={"not_a_parameter": "1"}, **kwargs)
    assert len(lane_calls) == served + 1, "the request with a query string took the lane"
    assert _comparable(express) == _comparable(framework)
    return express


#: The lane routes of each service beyond ``/config/log-level``, which every one has.
LANES = {
    "contacts": {f"{CONTACTS}/{{contact_id:uuid}}"},
    "orders": {"/api/v1/orders/{order_id:uuid}"},
    "identity": {"/api/v1/users/me", "/api/v1/users/{user_id:uuid}", "/.well-known/jwks.json"},
}


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_which_routes_have_a_lane(service: str, fleet: Fleet):
    # GETs by id and other parameterless reads; lists (query parameters with
    # dependencies of their own) and writes stay with FastAPI.
    app = (await fleet.start(service)).app
    lanes = lane_routes(app)
    assert "/config/log-level" in lanes
    assert all(
        route.methods == {"GET"}
        for route in app.router.routes
        if isinstance(route, ExpressRoute) and route.has_lane
    )
    if service in LANES:
        assert lanes == {"/config/log-level", *LANES[service]}


async def test_contact_read(contacts: httpx.AsyncClient, lane_calls: list[str]):
    contact = await create(contacts, company="ACME", notes="VIP")
    path = f"{CONTACTS}/{contact['id']}"
    response = await same_either_way(contacts, path, lane_calls)
    assert response.status_code == 200
    assert response.json() == contact
    assert response.headers["etag"] == '"1"'
    viewer = await same_either_way(contacts, path, lane_calls, headers=bearer("viewer"))
    assert viewer.status_code == 200


async def test_contact_errors(contacts: httpx.AsyncClient, lane_calls: list[str]):
    contact = await create(contacts)
    assert (await contacts.delete(f"{CONTACTS}/{contact['id']}")).status_code == 200
    deleted = await same_either_way(contacts, f"{CONTACTS}/{contact['id']}", lane_calls)
    assert deleted.status_code == 404
    missing = await same_either_way(contacts, f"{CONTACTS}/{uuid.uuid4()}", lane_calls)
    assert missing.status_code == 404
    path = f"{CONTACTS}/{uuid.uuid4()}"
    no_token = await same_either_way(contacts, path, lane_calls, headers={"Authorization": ""})
    assert no_token.status_code == 401
    forged = await same_either_way(
        contacts, path, lane_calls, headers={"Authorization": "Bearer not.a.token"}
    )
    assert forged.status_code == 401


async def test_log_level(contacts: httpx.AsyncClient, lane_calls: list[str]):
    response = await same_either_way(contacts, "/config/log-level", lane_calls)
    assert response.status_code == 200


async def test_missing_order(orders: httpx.AsyncClient, lane_calls: list[str]):
    response = await same_either_way(orders, f"/api/v1/orders/{uuid.uuid4()}", lane_calls)
    assert response.status_code == 404


async def test_identity_reads(identity: httpx.AsyncClient, lane_calls: list[str]):
    keys = await same_either_way(identity, "/.well-known/jwks.json", lane_calls)
    assert keys.status_code == 200 and keys.json()["keys"]
    admin = bearer_of((await login(identity))["access_token"])
    me = await same_either_way(identity, "/api/v1/users/me", lane_calls, headers=admin)
    assert me.status_code == 200
    user_path = f"/api/v1/users/{me.json()['id']}"
    user = await same_either_way(identity, user_path, lane_calls, headers=admin)
    assert user.json() == me.json()
    _, member_token = await new_user(identity, admin["Authorization"].removeprefix("Bearer "))
    forbidden = await same_either_way(
        identity, user_path, lane_calls, headers=bearer_of(member_token)
    )
    assert forbidden.status_code == 403


async def test_a_route_without_a_check_is_refused():
    router = public_router(prefix="/open")

    @router.get("/door")
    async def door() -> dict[str, str]:
        return {}

    with pytest.raises(ConfigurationError, match="GET /open/door has no protected check"):
        add_routes(FastAPI(), [router], guard=is_protected)
