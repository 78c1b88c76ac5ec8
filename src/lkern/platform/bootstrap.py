"""The composition root: which adapters a service instance gets, decided from its settings.

Database engines and the read pool, the broker (memory or Kafka, by URL),
the rate limiter (in process or Redis), the token verifier (the keys the
definition declares, else identity's JWKS), the gRPC clients of the peers
the definition declares, the relay, the consumer and the gRPC server are
all built here and nowhere else; this module also starts and stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from lkern.platform import runtime_config, telemetry
from lkern.platform.auth import JwksKeys, KeySource, Revocations, TokenVerifier
from lkern.platform.cleanup.worker import Cleanable, CleanupWorker
from lkern.platform.db import (
    PlatformTables,
    create_engine,
    read_session_factory,
    session_factory,
)
from lkern.platform.errors import ConfigurationError
from lkern.platform.events.broker import Broker, BrokerUnavailable
from lkern.platform.events.consumer import EventConsumer, RetryPolicy
from lkern.platform.events.kafka import KafkaBroker, KafkaOptions
from lkern.platform.events.memory import memory_broker
from lkern.platform.events.relay import OutboxRelay, RelayOptions
from lkern.platform.grpc.client import CallPolicy, GrpcClient
from lkern.platform.grpc.server import GrpcServer
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.migrations import upgrade
from lkern.platform.ratelimit import MemoryCounter, RateLimiter, RedisCounter
from lkern.platform.reads import Reader
from lkern.platform.revocations import RevocationRefresher
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings
from lkern.platform.shutdown import Shutdown
from lkern.platform.storage.local import LOCAL_FILES_PREFIX, LocalObjectStore
from lkern.platform.storage.port import ObjectStore, StorageUnavailable
from lkern.platform.storage.signing import LinkSigner

logger = logging.getLogger(__name__)

T = TypeVar("T")


def build_runtime(definition: ServiceDefinition, settings: Settings) -> ServiceRuntime:
    """Every adapter of one service instance; nothing connects until it is used."""
    if not isinstance(settings, definition.settings_class):
        raise TypeError(
            f"{definition.name} is configured by {definition.settings_class.__name__}, "
            f"not {type(settings).__name__}"
        )
    problems = settings.production_problems(definition.name)
    if problems:
        raise ConfigurationError(
            f"{definition.name} refuses to start in production: " + "; ".join(problems)
        )
    telemetry.configure_export(build_span_processor)
    tracer = telemetry.tracer(definition.name, definition.version)
    engine = create_engine(settings, definition.name)
    telemetry.trace_statements(engine.sync_engine, tracer)
    broker = build_broker(settings)
    revocations = Revocations()
    metrics = ServiceMetrics(definition.name, definition.version)
    metrics.watch_pool(engine)
    runtime = ServiceRuntime(
        definition=definition,
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        read_sessions=read_session_factory(engine),
        reader=Reader(engine, settings, definition.name, tracer=tracer),
        broker=broker,
        metrics=metrics,
        relay=OutboxRelay(
            engine, broker, options=relay_options(settings), metrics=metrics, tracer=tracer
        ),
        verifier=build_verifier(definition, settings, revocations),
        revocations=revocations,
        limiter=build_limiter(settings),
        shutdown=Shutdown(settings.shutdown_grace_seconds),
        tracer=tracer,
        clients=build_clients(definition, settings, tracer),
    )
    runtime.readiness["broker"] = broker.ping
    if definition.file_slots:
        runtime.storage = build_storage(settings, definition.name)
        runtime.readiness["storage"] = runtime.storage.ping
        runtime.cleanup = CleanupWorker(
            runtime.unit_of_work,
            {
                slot.kind.name: Cleanable(slot.kind, runtime.owned_files(slot))
                for slot in definition.file_slots
            },
            lease_seconds=settings.cleanup_lease_seconds,
            poll_seconds=settings.cleanup_poll_seconds,
        )
    if definition.event_handlers:
        runtime.consumer = EventConsumer(
            service=definition.name,
            broker=broker,
            handlers=definition.event_handlers,
            unit_of_work=runtime.unit_of_work,
            metrics=metrics,
            retry=RetryPolicy(
                retries=settings.consumer_retries, base_seconds=settings.consumer_retry_base_seconds
            ),
            tracer=tracer,
        )
    if definition.grpc_services is not None and definition.grpc_port is not None:
        runtime.grpc_server = GrpcServer(
            definition.name,
            settings.host,
            settings.grpc_port if settings.grpc_port is not None else definition.grpc_port,
            definition.grpc_services(runtime.unit_of_work),
            secret=settings.service_secret_value(),
            clock_skew_seconds=settings.clock_skew_seconds,
            tracer=tracer,
        )
    return runtime


def build_span_processor() -> SpanProcessor | None:
    """OTLP, batched, when the environment names an endpoint
    (``OTEL_EXPORTER_OTLP_ENDPOINT``); otherwise none, and spans carry the trace
    context only (telemetry.py). HTTP/protobuf unless ``OTEL_EXPORTER_OTLP_PROTOCOL``
    (or its ``_TRACES_`` form) says ``grpc``; the exporter and the batch processor
    read the rest of the ``OTEL_*`` variables themselves (headers, timeout,
    compression, ``OTEL_BSP_*``)."""
    if not telemetry.export_requested():
        return None
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    exporter: SpanExporter
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        exporter = GrpcSpanExporter()
    else:
        if protocol not in ("", "http/protobuf"):
            logger.warning("OTLP protocol %r is not supported; exporting http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    return BatchSpanProcessor(exporter)


def build_broker(settings: Settings) -> Broker:
    """The adapter ``broker_url`` names."""
    url = settings.broker_url
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return memory_broker(url)
    if scheme == "kafka":
        return KafkaBroker(url, kafka_options(settings))
    raise ConfigurationError(f"unsupported broker URL {url!r}: use memory:// or kafka://host:port")


def build_storage(settings: Settings, service: str) -> ObjectStore:
    """Local files or S3, by the service's storage URL (§8)."""
    url = settings.resolved_storage_url(service)
    if url.startswith("s3://"):
        # aiobotocore, and aiohttp with it, are a fifth of a process's start-up
        # imports: only a service that stores on S3 pays for them.
        from lkern.platform.storage.s3 import S3Location, S3ObjectStore

        return S3ObjectStore(S3Location.parse(url))
    if not url.startswith("file://"):
        raise ConfigurationError(f"unsupported storage URL {url!r}: use file:///path or s3://")
    key = settings.storage_signing_key
    secret = key.get_secret_value() if key else f"{settings.service_secret_value()}:{service}"
    return LocalObjectStore(
        Path(url.removeprefix("file://")),
        signer=LinkSigner(secret.encode()),
        url_prefix=LOCAL_FILES_PREFIX,
    )


def kafka_options(settings: Settings) -> KafkaOptions:
    return KafkaOptions(
        idempotence=settings.kafka_idempotence,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        partitions=settings.kafka_partitions,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        fetch_idle_wait_ms=settings.kafka_fetch_idle_wait_ms,
        fetch_max_records=settings.kafka_fetch_max_records,
    )


def relay_options(settings: Settings) -> RelayOptions:
    return RelayOptions(
        batch_size=settings.outbox_batch_size,
        in_flight_batches=settings.outbox_in_flight_batches,
        poll_seconds=settings.outbox_poll_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        retention_seconds=settings.outbox_retention_seconds,
    )


def build_limiter(settings: Settings) -> RateLimiter:
    """Counted in this process, or in Redis (shared by every replica) when configured."""
    if not settings.redis_url:
        return RateLimiter(MemoryCounter())
    return RateLimiter(
        RedisCounter(
            settings.redis_url,
            timeout_seconds=settings.redis_timeout_seconds,
            retry_seconds=settings.redis_retry_seconds,
        )
    )


def build_verifier(
    definition: ServiceDefinition, settings: Settings, revocations: Revocations
) -> TokenVerifier:
    """Tokens checked with the keys the definition declares, else with identity's JWKS,
    and refused when ``revocations`` say their user was revoked after they were issued."""
    keys: KeySource = (
        definition.token_keys(settings)
        if definition.token_keys is not None
        else JwksKeys(f"{settings.identity_url.rstrip('/')}/.well-known/jwks.json")
    )
    return TokenVerifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=settings.clock_skew_seconds,
        revocations=revocations,
    )


def build_clients(
    definition: ServiceDefinition, settings: Settings, tracer: Tracer | None = None
) -> dict[str, GrpcClient]:
    """One client per declared peer, at the target the service's settings name."""
    clients = {}
    for peer in definition.peers:
        target = getattr(settings, peer.target_setting, None)
        if not isinstance(target, str):
            raise ConfigurationError(
                f"{definition.name}'s settings have no {peer.target_setting!r} "
                f"for its gRPC peer {peer.name}"
            )
        clients[peer.name] = GrpcClient(
            target,
            caller=definition.name,
            peer=peer.name,
            secret=settings.service_secret_value(),
            policy=CallPolicy(deadline_seconds=settings.grpc_deadline_seconds),
            unavailable_code=peer.unavailable_code,
            tracer=tracer,
        )
    return clients


async def start_runtime(runtime: ServiceRuntime, *, migrate: bool) -> None:
    runtime.data_dir.mkdir(parents=True, exist_ok=True)
    runtime_config.apply_runtime_config(runtime)
    if migrate:
        await asyncio.to_thread(upgrade, runtime.definition, runtime.settings)
    if runtime.definition.on_start is not None:
        await runtime.definition.on_start(runtime.unit_of_work, runtime.settings)
    refresher = RevocationRefresher(
        runtime.unit_of_work,
        runtime.revocations,
        poll_seconds=runtime.settings.revocation_poll_seconds,
        leeway=runtime.settings.clock_skew_seconds,
    )
    # Revoked users are refused from the first request a replica answers.
    await refresher.refresh()
    runtime.workers.start("revocations", refresher.run)
    if runtime.storage is not None:
        try:
            await runtime.storage.start()
        except StorageUnavailable as exc:
            # Readiness says so; uploads answer 503 until storage is back.
            logger.warning("storage unavailable at start: %s", exc.detail)
    if runtime.cleanup is not None:
        runtime.workers.start("cleanup", runtime.cleanup.run)
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
    if runtime.consumer is not None:
        runtime.workers.start("event-consumer", runtime.consumer.run)


async def stop_runtime(runtime: ServiceRuntime) -> None:
    """Calls in flight finish, workers finish the message or batch in hand, the
    producer flushes, channels and pools close: all within what is left of the one
    grace period (shutdown.py), which the request drain has already spent from."""
    shutdown = runtime.shutdown
    if runtime.grpc_server is not None:
        await runtime.grpc_server.stop(shutdown.remaining())
    await runtime.workers.stop(shutdown.remaining())
    for client in runtime.clients.values():
        await client.close()
    await runtime.limiter.close()
    try:
        # The flush talks to the broker, which may be the thing that is stuck.
        async with asyncio.timeout(shutdown.remaining()):
            await runtime.broker.stop()
    except TimeoutError:
        logger.warning("the producer did not flush within the grace period")
    if runtime.storage is not None:
        await runtime.storage.close()
    await runtime.reader.close()
    await runtime.engine.dispose()
    # Last, so the spans of the shutdown itself are sent too; within the grace,
    # as a collector that is away must not hold the exit.
    await asyncio.to_thread(telemetry.flush, int(max(shutdown.remaining(), 0.1) * 1000))


def run_offline(definition: ServiceDefinition, work: Callable[[ServiceRuntime], Awaitable[T]]) -> T:
    """Run ``work`` against the service's database (a command), without serving anything."""

    async def run() -> T:
        runtime = build_runtime(definition, definition.load_settings())
        try:
            return await work(runtime)
        finally:
            if runtime.storage is not None:
                await runtime.storage.close()
            await runtime.reader.close()
            await runtime.engine.dispose()
            await asyncio.to_thread(telemetry.flush)

    return asyncio.run(run())
