"""What a running service instance holds, and the FastAPI dependencies reaching it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lkern.platform.auth import Revocations, TokenVerifier
from lkern.platform.cleanup.worker import CleanupWorker
from lkern.platform.deletion import Backoff, OwnedFiles
from lkern.platform.events.broker import Broker
from lkern.platform.events.consumer import EventConsumer
from lkern.platform.events.relay import OutboxRelay
from lkern.platform.grpc.client import GrpcClient
from lkern.platform.grpc.server import GrpcServer
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.ratelimit import Limit, RateLimiter
from lkern.platform.reads import Reader
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings
from lkern.platform.shutdown import Shutdown
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.storage.port import ObjectStore, StorageUnavailable
from lkern.platform.storage.uploads import UploadRules
from lkern.platform.uow import UnitOfWork
from lkern.platform.workers import BackgroundWorkers

ReadinessCheck = Callable[[], Awaitable[None]]
S = TypeVar("S", bound=Settings)


@dataclass
class ServiceRuntime:
    """One service instance's adapters, as the composition root (bootstrap.py) built them."""

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
    #: The one deadline every step of stopping this instance keeps.
    shutdown: Shutdown
    #: The service's tracer (telemetry.py): its spans name it.
    tracer: Tracer
    #: The users whose earlier tokens the verifier refuses (§9), kept up to the
    #: database by a worker.
    revocations: Revocations = field(default_factory=Revocations)
    #: One client per declared gRPC peer, by the peer's name.
    clients: dict[str, GrpcClient] = field(default_factory=dict)
    consumer: EventConsumer | None = None
    grpc_server: GrpcServer | None = None
    #: Object storage and its cleanup, for services whose resources own files.
    storage: ObjectStore | None = None
    cleanup: CleanupWorker | None = None
    workers: BackgroundWorkers = field(default_factory=BackgroundWorkers)
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)

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
            metrics=self.metrics,
        )

    def peer(self, name: str) -> GrpcClient:
        """The shared client of a peer the definition declares (its channel is reused)."""
        try:
            return self.clients[name]
        except KeyError:
            raise LookupError(f"{self.name} declares no gRPC peer {name!r}") from None

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


async def get_service_name(request: Request) -> str:
    # For routes that need only the name: they do not reach the database.
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime.name


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
ServiceName = Annotated[str, Depends(get_service_name)]


def settings_of(cls: type[S]) -> Callable[[Request], Awaitable[S]]:
    """A dependency answering the service's own settings, as its settings class."""

    async def settings(request: Request) -> S:
        runtime: ServiceRuntime = request.app.state.runtime
        return cls.of(runtime.settings)

    return settings
