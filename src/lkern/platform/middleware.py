"""The request context: service name, the request's span and client for logs, one log
line per request; the 500 problem for an error nothing else handled, and the 503 for a
request cut off at the end of a shutdown's drain.

The HTTP server span is made here rather than by an instrumentation package:
this layer already has the client, the status and the route template, and
the packages add spans for every ``receive`` and ``send`` and work per
request that W1 measured (docs/benchmarks.md, "Tracing"). It wraps the whole
app, so routes served on the express lane (express.py) get the same span.
"""

from __future__ import annotations

import asyncio
import logging
import time

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Tracer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern.platform.addresses import TrustedProxies, client_address, resolve_client
from lkern.platform.logging import current_service
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.problems import problem_response
from lkern.platform.shutdown import Shutdown
from lkern.platform.telemetry import extract_headers, fail, format_traceparent, recording
from lkern.platform.telemetry import tracer as tracer_of

logger = logging.getLogger("lkern.http")

#: The methods semantic conventions name; any other is recorded as ``_OTHER``.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


class RequestContextMiddleware:
    """Pure ASGI, so the context variables are set for the whole request, streaming included."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        metrics: ServiceMetrics,
        proxies: TrustedProxies | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.proxies = proxies or TrustedProxies(())
        self.tracer = tracer or tracer_of(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Resolved first, so every inner layer sees the client the same way.
        resolve_client(scope, self.proxies)
        method = scope["method"]
        client = client_address(scope)
        known = method in KNOWN_METHODS
        # Named by the method until the route is known (semantic conventions).
        name = method if known else "HTTP"
        span = self.tracer.start_span(
            name,
            context=extract_headers(dict(scope.get("headers") or ())),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method if known else "_OTHER",
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
                "client.address": client,
            }
            if recording()
            else None,
        )
        service_token = current_service.set(self.service)
        span_token = otel_context.attach(trace.set_span_in_context(span))
        started = time.perf_counter()
        status = 500

        async def send_with_trace(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                response_headers["traceparent"] = format_traceparent(span.get_span_context())
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None)
            self.metrics.http_requests.labels(method, template or "unmatched", str(status)).inc()
            self.metrics.http_latency.labels(method, template or "unmatched").observe(elapsed)
            logger.info(
                "%s %s -> %d in %.1f ms from %s",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                client,
            )
            if span.is_recording():
                _describe(span, name, route, template, status)
            span.end()
            otel_context.detach(span_token)
            current_service.reset(service_token)


def _describe(span: Span, name: str, route: object, template: str | None, status: int) -> None:
    """What the request turned out to be, on its span."""
    if template is not None:
        # The template as clients read it, without Starlette's converters.
        http_route = getattr(route, "path_format", template)
        span.update_name(f"{name} {http_route}")
        span.set_attributes({"http.route": http_route, "http.response.status_code": status})
    else:
        span.set_attribute("http.response.status_code", status)
    if status >= 500:
        fail(span, str(status))


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
