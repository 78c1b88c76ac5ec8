"""What a running service instance holds, and the FastAPI dependencies reaching it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lkern.platform.auth import TokenVerifier
from lkern.platform.events.broker import Broker, KafkaOptions, connect_broker
from lkern.platform.events.consumer import EventConsumer, RetryPolicy
from lkern.platform.events.relay import OutboxRelay, RelayOptions
from lkern.platform.grpc.client import CallPolicy, GrpcClient
from lkern.platform.grpc.server import GrpcServer
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.ratelimit import Limit, RateLimiter
from lkern.platform.reads import Reader
from lkern.platform.settings import Settings
from lkern.platform.uow import UnitOfWork
from lkern.platform.workers import BackgroundWorkers

if TYPE_CHECKING:
    from lkern.platform.service import ServiceDefinition

ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class ServiceRuntime:
    """One service instance's adapters, built once by the app factory."""

    definition: ServiceDefinition
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]
    reader: Reader
    broker: Broker
    metrics: ServiceMetrics
    relay: OutboxRelay
    verifier: TokenVerifier
    limiter: RateLimiter
    workers: BackgroundWorkers = field(default_factory=BackgroundWorkers)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    grpc_server: GrpcServer | None = None
    _clients: dict[str, GrpcClient] = field(default_factory=dict)

    def grpc_client(self, peer: str, target: str, *, unavailable_code: str) -> GrpcClient:
        """The one shared client of ``peer`` (its channel is reused by every call)."""
        if peer not in self._clients:
            self._clients[peer] = GrpcClient(
                target,
                caller=self.name,
                peer=peer,
                secret=self.settings.service_secret_value(),
                policy=CallPolicy(deadline_seconds=self.settings.grpc_deadline_seconds),
                unavailable_code=unavailable_code,
            )
        return self._clients[peer]

    async def close_clients(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def data_dir(self) -> Path:
        return self.settings.service_data_dir(self.name)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(
            self.sessions,
            reader=self.reader,
            service=self.name,
            on_events_committed=self.relay.wake,
            read_sessions=self.read_sessions,
        )

    @property
    def user_limit(self) -> Limit:
        return Limit(self.settings.rate_limit_requests, self.settings.rate_limit_window_seconds)

    @property
    def anonymous_limit(self) -> Limit:
        return Limit(
            self.settings.anonymous_rate_limit_requests, self.settings.rate_limit_window_seconds
        )

    def consumer(self) -> EventConsumer | None:
        handlers = self.definition.handlers
        if not handlers:
            return None
        return EventConsumer(
            service=self.name,
            broker=self.broker,
            handlers=handlers,
            unit_of_work=self.unit_of_work,
            metrics=self.metrics,
            retry=RetryPolicy(
                retries=self.settings.consumer_retries,
                base_seconds=self.settings.consumer_retry_base_seconds,
            ),
        )


def build_broker(settings: Settings) -> Broker:
    return connect_broker(
        settings.broker_url,
        KafkaOptions(
            idempotence=settings.kafka_idempotence,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
            partitions=settings.kafka_partitions,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        ),
    )


def relay_options(settings: Settings) -> RelayOptions:
    return RelayOptions(
        batch_size=settings.outbox_batch_size,
        poll_seconds=settings.outbox_poll_seconds,
        lease_seconds=settings.outbox_lease_seconds,
        retention_seconds=settings.outbox_retention_seconds,
    )


# Dependencies are coroutines even when they do no I/O: FastAPI runs plain
# functions in a worker thread, a hop that costs more than the work.
async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def get_uow(request: Request) -> UnitOfWork:
    # Straight from the request rather than through get_runtime: each
    # dependency level costs FastAPI a resolution step on every request.
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.unit_of_work()


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
