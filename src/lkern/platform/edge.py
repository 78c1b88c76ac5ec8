"""The layers every request passes before a route sees it, in one place and order.

Outermost first:

1. request context: the client address, the request's span, the log line and metrics;
   everything inside is logged and traced;
2. CORS (when origins are configured): outside every layer that answers with
   a problem document, so each of them (413, 408, 500, 503) carries the
   headers a browser needs to read it;
3. the 500 problem for an error nothing else handled, and the 503 for a
   request cut off at the end of a shutdown's drain;
4. body limits: the body is read, bounded in size and time, before admission,
   so a slow or oversized body never holds an admission slot;
5. admission: a bounded number of requests at once.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from opentelemetry.trace import Tracer

from lkern.platform.addresses import TrustedProxies
from lkern.platform.admission import AdmissionMiddleware
from lkern.platform.bodies import BodyLimitMiddleware, route_limits
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.middleware import RequestContextMiddleware, UnhandledErrorMiddleware
from lkern.platform.settings import Settings
from lkern.platform.shutdown import Shutdown


def install_edge(
    app: FastAPI,
    settings: Settings,
    *,
    service: str,
    metrics: ServiceMetrics,
    shutdown: Shutdown,
    tracer: Tracer | None = None,
) -> None:
    """Add the layers to ``app``, whose routes are all in place (they may set body limits)."""
    # Starlette wraps each added middleware around the ones added before it:
    # they are added innermost first.
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.request_concurrency(),
        patience_seconds=settings.request_queue_seconds,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        timeout_seconds=settings.body_timeout_seconds,
        min_rate=settings.body_min_rate,
        routes=route_limits(app.router.routes, settings),
    )
    app.add_middleware(UnhandledErrorMiddleware, shutdown=shutdown)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Credentials only for named origins, never with a wildcard.
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Retry-After", "traceparent"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        service=service,
        metrics=metrics,
        proxies=TrustedProxies(settings.trusted_proxies),
        tracer=tracer,
    )
