"""The routers services declare their routes on, and how an app takes the routes in.

Every router is one of two kinds: :func:`protected_router` (a token is needed:
viewers read, members write) or :func:`public_router` (anyone, limited per
client address). The check is a dependency of the router itself, so FastAPI
builds it into each route as the route is declared, and the app factory
refuses to start with a route that has neither: a route cannot be left open
by forgetting. Public routes say so in the OpenAPI document (``security: []``).

The app takes the routes in directly, as one flat list, rather than through
``include_router``: FastAPI keeps included routers nested and walks them twice
for every request, and the express lane (express.py) sees only what is in
the route itself. A GET or POST declared with ``express=True`` is an
:class:`ExpressRoute`; every other route is FastAPI's own ``APIRoute``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.types import DecoratedCallable

from lkern.platform.auth import BearerAuthorization, authorize_by_method, limit_by_client
from lkern.platform.errors import ConfigurationError
from lkern.platform.express import ExpressRoute
from lkern.platform.problems import problem_responses

Guard = Callable[[object], bool]


def protected_router(
    *, prefix: str = "", tags: Sequence[str | Enum] = (), dependencies: Sequence[Any] = ()
) -> PlatformRouter:
    """A router whose routes need a token; ``dependencies`` may demand more (an admin).

    Its routes may answer 503 whatever they do: a token is checked with identity's
    keys, which cannot be fetched while identity is down."""
    return _router(
        prefix, tags, [Depends(authorize_by_method), *dependencies], (401, 403, 429, 503)
    )


def public_router(*, prefix: str = "", tags: Sequence[str | Enum] = ()) -> PlatformRouter:
    """A router whose routes anyone may call, rate-limited per client address."""
    return _router(prefix, tags, [Depends(limit_by_client)], (429,))


class PlatformRouter(APIRouter):
    """An ``APIRouter`` whose routes may be marked for the express lane."""

    def get(
        self, path: str, *, express: bool = False, **options: Any
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """FastAPI's ``get``; with ``express`` the route is served on the express lane,
        and refused at declaration if the lane cannot serve it."""
        if not express:
            return super().get(path, **options)
        return self._express(path, "GET", options)

    def post(
        self, path: str, *, express: bool = False, **options: Any
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        """FastAPI's ``post``; ``express`` as for :meth:`get`, for a body that is a model."""
        if not express:
            return super().post(path, **options)
        return self._express(path, "POST", options)

    def _express(
        self, path: str, method: str, options: dict[str, Any]
    ) -> Callable[[DecoratedCallable], DecoratedCallable]:
        def declare(endpoint: DecoratedCallable) -> DecoratedCallable:
            self.add_api_route(
                path, endpoint, methods=[method], route_class_override=ExpressRoute, **options
            )
            return endpoint

        return declare


def _router(
    prefix: str, tags: Sequence[str | Enum], dependencies: list[Any], statuses: tuple[int, ...]
) -> PlatformRouter:
    return PlatformRouter(
        prefix=prefix,
        tags=list(tags),
        dependencies=dependencies,
        responses=problem_responses(*statuses),
    )


def is_protected(call: object) -> bool:
    return isinstance(call, BearerAuthorization)


def is_public(call: object) -> bool:
    return call is limit_by_client


def carries(route: APIRoute, guard: Guard) -> bool:
    """Whether one of the route's own dependencies is a check ``guard`` accepts
    (``lkern check`` asks the same, to name each route the app would refuse)."""
    return any(guard(sub.call) for sub in route.dependant.dependencies)


def add_routes(
    app: FastAPI, routers: Sequence[APIRouter], *, guard: Guard | None, express_lane: bool
) -> None:
    """Append the routers' routes to ``app``; each must carry a dependency ``guard`` accepts.

    With ``express_lane`` the routes marked for the lane take it in ``app``;
    without, every request goes through FastAPI.
    """
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                if guard is not None and not carries(route, guard):
                    methods = ",".join(sorted(route.methods or ()))
                    raise ConfigurationError(
                        f"{methods} {route.path} has no {guard.__name__.removeprefix('is_')} "
                        "check: declare it on a protected_router() or a public_router()"
                    )
                if guard is not is_protected:
                    # Said outright, so no reader (nor linter) takes "no security" for unknown.
                    route.openapi_extra = {"security": [], **(route.openapi_extra or {})}
                if express_lane and isinstance(route, ExpressRoute):
                    route.open_lane(app)
            app.router.routes.append(route)
