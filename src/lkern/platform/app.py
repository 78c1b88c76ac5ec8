"""The app factory: one FastAPI application per service, all built the same way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lkern.platform import deletion, health, runtime_config
from lkern.platform.auth import JwksKeys, TokenVerifier
from lkern.platform.db import PlatformTables, create_engine, read_session_factory, session_factory
from lkern.platform.edge import install_edge
from lkern.platform.errors import ConfigurationError
from lkern.platform.events import dlq
from lkern.platform.events.broker import BrokerUnavailable
from lkern.platform.events.relay import OutboxRelay
from lkern.platform.grpc.server import GrpcServer
from lkern.platform.logging import current_service
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.migrations import upgrade
from lkern.platform.problems import install_problem_handlers
from lkern.platform.ratelimit import build_limiter
from lkern.platform.reads import Reader
from lkern.platform.routers import add_routes, is_protected, is_public
from lkern.platform.runtime import ServiceRuntime, build_broker, relay_options
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)


def build_runtime(definition: ServiceDefinition, settings: Settings) -> ServiceRuntime:
    """Every adapter of one service instance; nothing connects until it is used."""
    problems = settings.production_problems(definition.name)
    if problems:
        raise ConfigurationError(
            f"{definition.name} refuses to start in production: " + "; ".join(problems)
        )
    engine = create_engine(settings, definition.name)
    broker = build_broker(settings)
    metrics = ServiceMetrics(definition.name, definition.version)
    keys = (
        definition.token_keys(settings)
        if definition.token_keys is not None
        else JwksKeys(f"{settings.identity_url.rstrip('/')}/.well-known/jwks.json")
    )
    metrics.watch_pool(engine)
    runtime = ServiceRuntime(
        definition=definition,
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        read_sessions=read_session_factory(engine),
        reader=Reader(engine, settings, definition.name),
        broker=broker,
        metrics=metrics,
        relay=OutboxRelay(engine, broker, options=relay_options(settings), metrics=metrics),
        verifier=TokenVerifier(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        limiter=build_limiter(settings.redis_url),
    )
    runtime.readiness["broker"] = broker.ping
    if definition.grpc_services is not None and definition.grpc_port is not None:
        runtime.grpc_server = GrpcServer(
            definition.name,
            settings.host,
            settings.grpc_port if settings.grpc_port is not None else definition.grpc_port,
            definition.grpc_services(runtime),
            secret=settings.service_secret_value(),
        )
    return runtime


async def start_runtime(runtime: ServiceRuntime, *, migrate: bool) -> None:
    runtime.data_dir.mkdir(parents=True, exist_ok=True)
    runtime_config.apply_runtime_config(runtime)
    if migrate:
        await asyncio.to_thread(upgrade, runtime.definition, runtime.settings)
    if runtime.definition.on_start is not None:
        await runtime.definition.on_start(runtime)
    await runtime.broker.start()
    topics = [cls.event_type for cls in runtime.definition.produces]
    try:
        await runtime.broker.ensure_topics(topics + [f"{topic}.dlq" for topic in topics])
    except BrokerUnavailable as exc:
        # The outbox holds events until the broker is back; the relay retries.
        logger.warning("broker unavailable at start: %s", exc)
    if runtime.grpc_server is not None:
        await runtime.grpc_server.start()
    if PlatformTables.OUTBOX in runtime.definition.platform_tables:
        runtime.workers.start("outbox-relay", runtime.relay.run)
    consumer = runtime.consumer()
    if consumer is not None:
        runtime.workers.start("event-consumer", consumer.run)


async def stop_runtime(runtime: ServiceRuntime) -> None:
    """Calls in flight finish, workers finish the message or batch in hand, the
    producer flushes, channels and pools close."""
    grace = runtime.settings.shutdown_grace_seconds
    if runtime.grpc_server is not None:
        await runtime.grpc_server.stop(grace)
    await runtime.workers.stop(grace)
    await runtime.close_clients()
    close = getattr(runtime.limiter.counter, "close", None)
    if close is not None:
        await close()
    await runtime.broker.stop()
    await runtime.reader.close()
    await runtime.engine.dispose()


def create_app(
    definition: ServiceDefinition, settings: Settings, *, migrate: bool = True
) -> FastAPI:
    """Build the service's app; with ``migrate`` its schema is brought to head at start."""
    runtime = build_runtime(definition, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        token = current_service.set(definition.name)
        try:
            await start_runtime(runtime, migrate=migrate)
            logger.info("%s ready", definition.name)
            yield
        finally:
            await stop_runtime(runtime)
            logger.info("%s stopped", definition.name)
            current_service.reset(token)

    app = FastAPI(
        title=f"L-KERN {definition.title} ({definition.code})",
        description=definition.description,
        version=definition.version,
        lifespan=lifespan,
        redirect_slashes=False,
        # The platform measures and traces requests itself (metrics.py, tracing.py);
        # FastAPI's own OpenTelemetry hooks would cost a provider lookup per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    # FastAPI added its documentation routes first; a request is matched against
    # the routes in order, so they go last and the service's own routes, the
    # ones most requests are for, first.
    documentation = list(app.router.routes)
    app.router.routes.clear()
    protected = [*definition.routers, runtime_config.router, deletion.router]
    if definition.handlers:
        protected.append(dlq.router)
    add_routes(app, protected, guard=is_protected)
    add_routes(app, definition.public_routers, guard=is_public)
    add_routes(app, [health.router], guard=None)
    app.router.routes.extend(documentation)
    install_edge(app, settings, service=definition.name, metrics=runtime.metrics)
    return app
