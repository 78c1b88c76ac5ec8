"""Which of a service's routes the app factory would refuse: neither protected nor public.

Apart from the rules (routes.py), since :class:`~lkern.conformance.subject.Subject`
builds the app from the routes that are left.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from fastapi import APIRouter
from fastapi.routing import APIRoute

from lkern.platform.routers import carries, is_protected, is_public
from lkern.platform.service import ServiceDefinition


def api_routes(routers: Sequence[APIRouter]) -> Iterator[APIRoute]:
    for router in routers:
        yield from (route for route in router.routes if isinstance(route, APIRoute))


def describe(route: APIRoute) -> str:
    return f"{','.join(sorted(route.methods or ()))} {route.path}"


def unguarded(definition: ServiceDefinition) -> list[tuple[APIRoute, str]]:
    """The routes the app factory would refuse, each with why."""
    found = [
        (
            route,
            "has no token check: declare it on a protected_router(), or on a "
            "public_router() listed in public_routers if anyone may call it",
        )
        for route in api_routes(definition.routers)
        if not carries(route, is_protected)
    ]
    found += [
        (route, "is listed in public_routers but not declared on a public_router()")
        for route in api_routes(definition.public_routers)
        if not carries(route, is_public)
    ]
    return found


def without_unguarded(definition: ServiceDefinition) -> ServiceDefinition:
    """The definition with the refused routes left out, so the rest can still be served
    and checked."""
    refused = {id(route) for route, _ in unguarded(definition)}
    if not refused:
        return definition

    def kept(routers: Sequence[APIRouter]) -> list[APIRouter]:
        copies = []
        for router in routers:
            copy = APIRouter()
            copy.routes = [route for route in router.routes if id(route) not in refused]
            copies.append(copy)
        return copies

    return dataclasses.replace(
        definition,
        routers=kept(definition.routers),
        public_routers=kept(definition.public_routers),
    )
