"""Which routes the express lane may serve (platform/express.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from lkern.platform.express import ExpressRoute, plan_lane


async def needs_request(request: Request) -> str:
    return request.method


async def needs_a_query(q: str = "") -> str:
    return q


async def yields() -> AsyncIterator[str]:
    yield "x"


def route_of(declare: Callable[[APIRouter], Any]) -> ExpressRoute:
    router = APIRouter(route_class=ExpressRoute)
    declare(router)
    [route] = router.routes
    assert isinstance(route, ExpressRoute)
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


async def required_query(q: str) -> None: ...


async def header(agent: Annotated[str, Header()] = "") -> None: ...


async def yield_dependency(x: Annotated[str, Depends(yields)]) -> None: ...


async def dependency_with_parameters(x: Annotated[str, Depends(needs_a_query)]) -> None: ...


async def constrained_path(item_id: Annotated[str, Path(min_length=3)]) -> None: ...


def sync_endpoint() -> None: ...


async def mutable_default(tags: Annotated[list[str], Query()] = ["a"]) -> None: ...  # noqa: B006


@pytest.mark.parametrize(
    "endpoint",
    [
        required_query,
        header,
        yield_dependency,
        dependency_with_parameters,
        constrained_path,
        sync_endpoint,
        mutable_default,
    ],
)
def test_routes_that_still_need_fastapi(endpoint: Callable[..., Any]):
    route = route_of(lambda router: router.get("/items/{item_id}")(endpoint))
    assert plan_lane(route) is None


def test_a_path_parameter_typed_otherwise_than_its_converter():
    def declare(router: APIRouter) -> None:
        @router.get("/items/{item_id:uuid}")
        async def read(item_id: str) -> dict[str, str]:
            return {}

    assert plan_lane(route_of(declare)) is None


def test_writes_have_no_lane():
    def declare(router: APIRouter) -> None:
        @router.post("/items")
        async def write() -> dict[str, str]:
            return {}

    assert plan_lane(route_of(declare)) is None
