"""What a running service instance holds, and the FastAPI dependencies reaching it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lkern.platform.auth import TokenVerifier
from lkern.platform.cleanup.worker import CleanupWorker
from lkern.platform.deletion import Backoff, OwnedFiles
from lkern.platform.events.broker import Broker, KafkaOptions, connect_broker
from lkern.platform.events.consumer import EventConsumer, RetryPolicy
from lkern.platform.events.outbox import OutboxRelay, RelayOptions
from lkern.platform.grpc.client import CallPolicy, GrpcClient
from lkern.platform.grpc.server import GrpcServer
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.ratelimit import Limit, RateLimiter
from lkern.platform.reads import Reader
from lkern.platform.settings import Settings
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.storage.local import LOCAL_FILES_PREFIX, LocalObjectStore
from lkern.platform.storage.port import ObjectStore, StorageUnavailable
from lkern.platform.storage.s3 import S3Location, S3ObjectStore
from lkern.platform.storage.signing import LinkSigner
from lkern.platform.storage.uploads import UploadRules
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
    storage: ObjectStore | None = None
    cleanup: CleanupWorker | None = None
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

    def owned_files(self, slot: FileSlot[Any]) -> OwnedFiles[Any]:
        """How permanent deletion finds and removes the files of ``slot``'s resource."""
        if self.storage is None:
            raise StorageUnavailable("This service keeps no files.")
        return OwnedFiles(
            self.storage,
            slot.keys,
            Backoff(base_seconds=self.settings.cleanup_retry_base_seconds),
            timedelta(seconds=self.settings.cleanup_lease_seconds),
        )

    @property
    def upload_rules(self) -> UploadRules:
        return UploadRules(
            max_bytes=self.settings.upload_max_bytes,
            allowed_types=frozenset(self.settings.upload_allowed_types),
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


def build_storage(settings: Settings, service: str) -> ObjectStore:
    """Local files or S3, by the service's storage URL (§8)."""
    url = settings.resolved_storage_url(service)
    if url.startswith("s3://"):
        return S3ObjectStore(S3Location.parse(url))
    if not url.startswith("file://"):
        raise ValueError(f"storage URLs are file:///path or s3://bucket, not {url!r}")
    key = settings.storage_signing_key
    secret = key.get_secret_value() if key else f"{settings.service_secret_value()}:{service}"
    return LocalObjectStore(
        Path(url.removeprefix("file://")),
        signer=LinkSigner(secret.encode()),
        url_prefix=LOCAL_FILES_PREFIX,
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
