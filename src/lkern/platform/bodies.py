"""Request bodies are bounded in size and in the time they may take to arrive (§2).

A body is read here, before the request is admitted (admission.py) and before
anything parses it or checks a token: one over the limit is a 413, whether it
announced its length (then it is not read at all) or streams it chunked; one
that arrives slower than the configured rate is a 408. Either way the
connection is closed, and the client never held an admission slot or a
database connection while it sent. The body read is handed on as the chunks
that came in, so it is joined only once, by whoever parses it.

The limit is the JSON one (``LKERN_MAX_BODY_BYTES``) unless a route declares
its own with :func:`max_body_bytes`. Uploads (§8) declare theirs ``streamed``:
their body is far too large to hold before the route runs, so it is passed
on as it arrives, and the same limits apply to each chunk the route reads
(a 413 or 408 raised from inside its reading).
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern.platform.errors import DomainError
from lkern.platform.problems import problem_response
from lkern.platform.settings import Settings

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Limit = int | Callable[[Settings], int]

_LIMIT_ATTRIBUTE = "__lkern_max_body_bytes__"
_STREAMED_ATTRIBUTE = "__lkern_streamed_body__"
_CLOSE = {"Connection": "close"}


def max_body_bytes(limit: Limit, *, streamed: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Give a route its own body limit, in bytes or read from the settings::

    @router.post("/things/{thing_id}/attachments")
    @max_body_bytes(lambda settings: 10 * settings.max_body_bytes, streamed=True)
    async def upload(...): ...

    ``streamed``: the route reads the body itself as it arrives, within the limits.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _LIMIT_ATTRIBUTE, limit)
        setattr(endpoint, _STREAMED_ATTRIBUTE, streamed)
        return endpoint

    return mark


@dataclass(frozen=True, slots=True)
class RouteLimit:
    path: re.Pattern[str]
    methods: frozenset[str] | None
    limit: int
    streamed: bool = False

    def applies(self, scope: Scope) -> bool:
        return (self.methods is None or scope["method"] in self.methods) and bool(
            self.path.match(scope["path"])
        )


def route_limits(routes: Sequence[BaseRoute], settings: Settings) -> tuple[RouteLimit, ...]:
    """The limits routes declared with :func:`max_body_bytes`."""
    limits = []
    for route in routes:
        declared: Limit | None = getattr(getattr(route, "endpoint", None), _LIMIT_ATTRIBUTE, None)
        if declared is None or not isinstance(route, Route):
            continue
        limit = declared if isinstance(declared, int) else declared(settings)
        methods = frozenset(route.methods) if route.methods else None
        streamed = bool(getattr(route.endpoint, _STREAMED_ATTRIBUTE, False))
        limits.append(RouteLimit(route.path_regex, methods, limit, streamed))
    return tuple(limits)


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        timeout_seconds: float,
        min_rate: int,
        routes: Sequence[RouteLimit] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout_seconds = timeout_seconds
        self.min_rate = min_rate
        self.routes = tuple(routes)

    def _route_for(self, scope: Scope) -> RouteLimit | None:
        for route in self.routes:
            if route.applies(scope):
                return route
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and (declared is None or declared == b"0"):
            await self.app(scope, receive, send)
            return
        route = self._route_for(scope) if self.routes else None
        limit = route.limit if route is not None else self.limit
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if route is not None and route.streamed:
            await self.app(scope, self._guarded(receive, limit), send)
            return
        messages = await self._read(receive, limit)
        if isinstance(messages, Refusal):
            await messages.response(scope, receive, send)
            return
        await self.app(scope, replay(messages, receive), send)

    async def _read(self, receive: Receive, limit: int) -> deque[Message] | Refusal:
        loop = asyncio.get_running_loop()
        # As with Apache's mod_reqtimeout: a first allowance, and a second
        # more for every min_rate bytes that came in.
        allowance = loop.time() + self.timeout_seconds
        messages: deque[Message] = deque()
        received = 0
        while True:
            try:
                async with asyncio.timeout_at(allowance + received / self.min_rate):
                    message = await receive()
            except TimeoutError:
                return Refusal(
                    problem_response(
                        408,
                        "The request body arrived too slowly.",
                        code="BODY_TIMEOUT",
                        headers=_CLOSE,
                    )
                )
            if message["type"] == "http.disconnect":
                # Nobody will read it; it is what the request's log line shows.
                return Refusal(
                    problem_response(
                        400,
                        "The connection closed before the request body arrived.",
                        code="BODY_INCOMPLETE",
                        headers=_CLOSE,
                    )
                )
            received += len(message.get("body", b""))
            if received > limit:
                return Refusal(_too_large(limit))
            messages.append(message)
            if not message.get("more_body", False):
                return messages

    def _guarded(self, receive: Receive, limit: int) -> Receive:
        """``receive`` for a route that reads its body as it comes: the same size and
        rate limits, raised as problems inside the route's reading."""
        loop = asyncio.get_running_loop()
        allowance = loop.time() + self.timeout_seconds
        received = 0

        async def guarded() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout_at(allowance + received / self.min_rate):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut() from None
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
            return message

        return guarded


class BodyTooLarge(DomainError):
    status = 413
    title = "Content too large"
    default_code = "BODY_TOO_LARGE"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.", headers=_CLOSE)


class BodyTimedOut(DomainError):
    status = 408
    title = "Request timeout"
    default_code = "BODY_TIMEOUT"

    def __init__(self) -> None:
        super().__init__("The request body arrived too slowly.", headers=_CLOSE)


@dataclass(frozen=True, slots=True)
class Refusal:
    response: ASGIApp


def _too_large(limit: int) -> ASGIApp:
    return problem_response(
        413,
        f"The request body is larger than {limit} bytes.",
        code="BODY_TOO_LARGE",
        headers=_CLOSE,
    )


def replay(messages: deque[Message], receive: Receive) -> Receive:
    """The body as it came in, then the connection's own messages (a disconnect)."""

    async def replayed() -> Message:
        if messages:
            return messages.popleft()
        return await receive()

    return replayed
