"""The request context: service name, trace and client for logs, one log line per request;
the 500 problem for an error nothing else handled, and the 503 for a request cut off
at the end of a shutdown's drain."""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern.platform.addresses import TrustedProxies, client_address, resolve_client
from lkern.platform.logging import current_service
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.problems import problem_response
from lkern.platform.shutdown import Shutdown
from lkern.platform.tracing import current_trace, new_trace, parse_traceparent

logger = logging.getLogger("lkern.http")


class RequestContextMiddleware:
    """Pure ASGI, so the context variables are set for the whole request, streaming included."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        metrics: ServiceMetrics,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.proxies = proxies or TrustedProxies(())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Resolved first, so every inner layer sees the client the same way.
        resolve_client(scope, self.proxies)
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"traceparent", b"").decode("latin-1")
        trace = parse_traceparent(incoming) or new_trace()
        service_token = current_service.set(self.service)
        trace_token = current_trace.set(trace)
        started = time.perf_counter()
        status = 500

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                response_headers["traceparent"] = trace.traceparent
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.http_latency.labels(scope["method"], template).observe(elapsed)
            logger.info(
                "%s %s -> %d in %.1f ms from %s",
                scope["method"],
                scope["path"],
                status,
                elapsed * 1000,
                client_address(scope),
            )
            current_trace.reset(trace_token)
            current_service.reset(service_token)


class UnhandledErrorMiddleware:
    """An error no handler took becomes a 500 problem document.

    It sits inside the request context, so the log line and the document carry
    the trace id, and inside CORS, so a browser can read the document too.

    A request still running when a shutdown's drain is over is cancelled by the
    runner (runner.py); here it becomes a 503 the client may retry, as the
    request's transaction was rolled back, instead of the server's bare 500.
    """

    def __init__(self, app: ASGIApp, shutdown: Shutdown | None = None) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_response = False

        async def send_watched(message: Message) -> None:
            nonlocal started_response
            if message["type"] == "http.response.start":
                started_response = True
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        except asyncio.CancelledError:
            if started_response or self.shutdown is None or not self.shutdown.cutting_off:
                raise
            task = asyncio.current_task()
            if task is not None:
                # The cancellation has done its work (the request stopped, its
                # transaction rolled back); what is left is to say so.
                task.uncancel()
            logger.warning("%s %s cut off by the shutdown", scope["method"], scope["path"])
            cut_off = problem_response(
                503,
                "The service is shutting down; retry the request.",
                code="SHUTTING_DOWN",
                headers={"Connection": "close", "Retry-After": "1"},
            )
            await cut_off(scope, receive, send)
        except Exception:
            logger.exception("unhandled error in %s %s", scope["method"], scope["path"])
            if started_response:
                raise
            response = problem_response(
                500, "An unexpected error occurred; quote the trace id when reporting it."
            )
            await response(scope, receive, send)
