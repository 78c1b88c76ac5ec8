"""Which routes the express lane may serve, and which it does (platform/express.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Annotated, Any

import httpx
import pytest
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.routing import APIRoute
from pydantic import BaseModel

from lkern.platform.express import ExpressRoute, NoLane, plan_lane
from lkern.platform.routers import PlatformRouter, add_routes, public_router


async def needs_request(request: Request) -> str:
    return request.method


async def needs_a_query(q: str = "") -> str:
    return q


async def yields() -> AsyncIterator[str]:
    yield "x"


def route_of(declare: Callable[[APIRouter], Any]) -> APIRoute:
    """The one route ``declare`` puts on a router, as FastAPI builds it (no lane yet)."""
    router = APIRouter()
    declare(router)
    [route] = router.routes
    assert isinstance(route, APIRoute)
    return route


def test_a_get_by_id_with_optional_flags_and_request_dependencies():
    def declare(router: APIRouter) -> None:
        @router.get("/items/{item_id:uuid}", dependencies=[Depends(needs_request)])
        async def read(
            item_id: uuid.UUID,
            response: Response,
            method: Annotated[str, Depends(needs_request)],
            verbose: bool = False,
        ) -> dict[str, str]:
            return {}

    lane = plan_lane(route_of(declare))
    assert lane is not None
    assert lane.path_params == ("item_id",)
    assert lane.defaults == {"verbose": False}
    assert lane.response_name == "response"
    # One call of the dependency, its value going to the endpoint's argument.
    [dependency] = lane.dependencies
    assert dependency.call is needs_request and dependency.targets == ("method",)


async def required_query(q: str) -> dict[str, str]:
    return {}


async def header(agent: Annotated[str, Header()] = "") -> dict[str, str]:
    return {}


async def yield_dependency(x: Annotated[str, Depends(yields)]) -> dict[str, str]:
    return {}


async def dependency_with_parameters(
    x: Annotated[str, Depends(needs_a_query)],
) -> dict[str, str]:
    return {}


async def constrained_path(item_id: Annotated[str, Path(min_length=3)]) -> dict[str, str]:
    return {}


def sync_endpoint() -> dict[str, str]:
    return {}


async def mutable_default(
    tags: Annotated[list[str], Query()] = ["a"],  # noqa: B006
) -> dict[str, str]:
    return {}


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (required_query, "query parameter q is required"),
        (header, "the endpoint reads headers"),
        (yield_dependency, "dependency yields is not a coroutine function"),
        (dependency_with_parameters, "dependency needs_a_query reads path or query parameters"),
        (constrained_path, "path parameter item_id is not taken exactly"),
        (sync_endpoint, "the endpoint is not a coroutine function"),
        (mutable_default, "query parameter tags is required or its default is mutable"),
    ],
)
def test_routes_that_still_need_fastapi(endpoint: Callable[..., Any], reason: str):
    # Each endpoint returns a model, so the refusal is for the reason named.
    route = route_of(lambda router: router.get("/items/{item_id}")(endpoint))
    with pytest.raises(NoLane, match=f"GET /items/{{item_id}} is marked .*, but {reason}"):
        plan_lane(route)


def test_a_path_parameter_typed_otherwise_than_its_converter():
    def declare(router: APIRouter) -> None:
        @router.get("/items/{item_id:uuid}")
        async def read(item_id: str) -> dict[str, str]:
            return {}

    with pytest.raises(NoLane, match="path parameter item_id"):
        plan_lane(route_of(declare))


class Item(BaseModel):
    name: str


def test_a_write_of_one_model_takes_the_lane_with_its_body():
    def declare(router: APIRouter) -> None:
        @router.post("/items/{item_id:uuid}", dependencies=[Depends(needs_request)])
        async def write(item_id: uuid.UUID, item: Item, response: Response) -> dict[str, str]:
            return {}

    lane = plan_lane(route_of(declare))
    assert lane.body_name == "item" and lane.path_params == ("item_id",)


async def loose_body(values: dict[str, Any]) -> dict[str, str]:
    return {}


async def two_bodies(a: Item, b: Item) -> dict[str, str]:
    return {}


async def optional_body(item: Item | None = None) -> dict[str, str]:
    return {}


async def no_body() -> dict[str, str]:
    return {}


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (loose_body, "its body parameter values is not a model"),
        (two_bodies, "its body is not one parameter taking the whole body"),
        (optional_body, "its body parameter item is optional"),
        (no_body, "its body is not one parameter"),
    ],
)
def test_a_write_without_one_model_for_its_body_has_no_lane(endpoint: Any, reason: str):
    with pytest.raises(NoLane, match=rf"POST /items .*, but {reason}"):
        plan_lane(route_of(lambda router: router.post("/items")(endpoint)))


def test_a_delete_has_no_lane():
    with pytest.raises(NoLane, match=r"DELETE /items .* one of GET, POST, PUT and PATCH"):
        plan_lane(route_of(lambda router: router.delete("/items")(no_body)))


async def plain() -> dict[str, str]:
    return {}


def test_only_a_marked_get_is_an_express_route():
    router = public_router()
    router.get("/marked", express=True)(plain)
    router.get("/unmarked")(plain)  # would qualify, but nobody asked
    marked, unmarked = router.routes
    assert isinstance(marked, ExpressRoute)
    assert type(unmarked) is APIRoute


def test_a_marked_route_the_lane_cannot_serve_is_refused_where_it_is_declared():
    router = public_router(prefix="/open")
    with pytest.raises(NoLane, match="GET /open/headers is marked for the express lane, but"):
        router.get("/headers", express=True)(header)


@pytest.mark.parametrize("express_lane", [True, False])
def test_the_lane_is_open_per_app_and_only_when_switched_on(express_lane: bool):
    router = public_router()
    router.get("/marked", express=True)(plain)
    [route] = router.routes
    assert isinstance(route, ExpressRoute)
    switched, other = FastAPI(), FastAPI()
    add_routes(switched, [router], guard=None, express_lane=express_lane)
    add_routes(other, [router], guard=None, express_lane=True)
    # The same route object in both apps (routes are declared once, at import).
    assert route.lane_open_in(switched) is express_lane
    assert route.lane_open_in(other)


async def no_model() -> None: ...


def test_a_route_without_a_response_model_has_no_lane():
    with pytest.raises(NoLane, match="it has no response model"):
        plan_lane(route_of(lambda router: router.get("/items")(no_model)))


async def test_a_route_included_with_include_router_goes_through_fastapi():
    # FastAPI keeps an included router's dependencies outside the route, where
    # the lane would not see them: only add_routes opens the lane.
    async def deny() -> None:
        raise HTTPException(status_code=403)

    router = PlatformRouter()
    router.get("/marked", express=True)(plain)
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(deny)])
    add_routes(FastAPI(), [router], guard=None, express_lane=True)  # opened elsewhere
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/marked")).status_code == 403


async def test_a_body_lost_with_its_client_is_answered_as_fastapi_answers_it():
    """A client gone before its body came: the lane's answer is FastAPI's 400, not an error."""

    async def create(item: Item) -> Item:
        return item

    router = PlatformRouter()
    router.post("/items", express=True, response_model=Item)(create)
    app = FastAPI()
    add_routes(app, [router], guard=None, express_lane=True)

    async def answer(query: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/items",
            "raw_path": b"/items",
            "query_string": query,
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body

    lane, framework = await answer(b""), await answer(b"through=fastapi")
    assert lane == framework
    assert lane[0] == 400
