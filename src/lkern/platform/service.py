"""How a service describes itself to the platform."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from sqlalchemy import MetaData

from lkern.events import EventData, event_types
from lkern.platform.auth import KeySource
from lkern.platform.db import PlatformBase
from lkern.platform.events.consumer import EventHandlers
from lkern.platform.grpc.server import Registration
from lkern.platform.settings import Settings

if TYPE_CHECKING:
    from lkern.platform.runtime import ServiceRuntime


@dataclass(frozen=True)
class ServiceDefinition:
    name: str  # "contacts"
    code: str  # "lkms101"
    title: str
    description: str
    version: str
    rest_port: int
    metadata: MetaData
    #: Routes behind authentication, declared on ``protected_router()``s.
    routers: Sequence[APIRouter]
    migrations_dir: Path
    grpc_port: int | None = None
    #: Routes anyone may call (identity's token and key routes), declared on
    #: ``public_router()``s.
    public_routers: Sequence[APIRouter] = ()
    #: Events this service consumes; None for a service that consumes nothing.
    handlers: EventHandlers | None = None
    #: The gRPC services it offers on ``grpc_port``, given its runtime.
    grpc_services: Callable[[ServiceRuntime], list[Registration]] | None = None
    #: Where this service gets the keys to verify tokens (identity: its own);
    #: every other service fetches identity's JWKS.
    token_keys: Callable[[Settings], KeySource] | None = None
    #: Runs once at start, after migrations (identity: the bootstrap admin).
    on_start: Callable[[ServiceRuntime], Awaitable[None]] | None = None
    #: Refreshes the service's own gauges before each scrape of /metrics.
    collect_metrics: Callable[[ServiceRuntime], Awaitable[None]] | None = None

    @property
    def produces(self) -> list[type[EventData]]:
        return event_types(self.name)

    @property
    def all_metadata(self) -> list[MetaData]:
        """The service's tables and the platform's, which live in the same database."""
        return [PlatformBase.metadata, self.metadata]
