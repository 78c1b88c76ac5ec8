"""How a service describes itself to the platform."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from fastapi import APIRouter
from sqlalchemy import MetaData

from lkern.events import EventData
from lkern.events.identity import UserChanged
from lkern.platform.auth import KeySource
from lkern.platform.db import PlatformTables
from lkern.platform.events.handlers import EventHandlers
from lkern.platform.grpc.server import Registration
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.revocations import revocation_handlers
from lkern.platform.settings import Settings, load_settings
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.tables import PLATFORM_METADATA
from lkern.platform.uow import UnitOfWork

#: Opens a new unit of work of the service: what a hook needs to reach its database.
UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class GrpcPeer:
    """A service this one calls over gRPC."""

    name: str  # "contacts"
    #: The field of the service's settings that holds the peer's ``host:port``.
    target_setting: str
    #: The problem code of the 503 answered when the peer cannot answer in time.
    unavailable_code: str


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
    #: The events this service's own handlers consume (the platform adds its
    #: own: see ``event_handlers``); None for a service with none.
    handlers: EventHandlers | None = None
    #: The gRPC services it offers on ``grpc_port``, given a unit-of-work factory.
    grpc_services: Callable[[UnitOfWorkFactory], list[Registration]] | None = None
    #: Where this service gets the keys to verify tokens (identity: its own);
    #: every other service fetches identity's JWKS.
    token_keys: Callable[[Settings], KeySource] | None = None
    #: Runs once at start, after migrations (identity: the bootstrap admin).
    on_start: Callable[[UnitOfWorkFactory, Settings], Awaitable[None]] | None = None
    #: The resources that own files (§8); a service with any gets object
    #: storage, the cleanup worker and its routes.
    file_slots: Sequence[FileSlot[Any]] = ()
    #: Refreshes the service's own gauges before each scrape of /metrics.
    collect_metrics: Callable[[UnitOfWorkFactory, ServiceMetrics], Awaitable[None]] | None = None
    #: The services it calls over gRPC; one client each is built at start.
    peers: Sequence[GrpcPeer] = ()
    #: Gives its records codes (``ORD-2601-0001``), counted in ``code_counters``.
    issues_codes: bool = False
    #: The events it emits (their topics are created at start, and the
    #: AsyncAPI document is built from these declarations).
    produces: Sequence[type[EventData]] = ()
    #: Its settings: the platform's, or a subclass adding the service's own.
    settings_class: type[Settings] = Settings
    #: Commands it adds to ``lkern`` (identity: ``users``), given its definition.
    commands: Callable[[ServiceDefinition], Sequence[click.Command]] | None = None

    def __post_init__(self) -> None:
        foreign = [cls.event_type for cls in self.produces if cls.service() != self.name]
        if foreign:
            raise ValueError(f"{self.name} cannot produce another service's events: {foreign}")

    def load_settings(self, **overrides: Any) -> Settings:
        """Its settings from the environment (``LKERN_`` and ``LKERN_<SERVICE>_``)."""
        return load_settings(self.name, self.settings_class, **overrides)

    @cached_property
    def event_handlers(self) -> EventHandlers | None:
        """Every event the service consumes: its own handlers', and the platform's
        revocations of users (§9), except in the service that publishes them (identity
        records its own as it makes the change)."""
        platform = None if UserChanged in self.produces else revocation_handlers()
        return EventHandlers.joined(platform, self.handlers)

    @property
    def platform_tables(self) -> frozenset[PlatformTables]:
        """The platform tables this service's database holds: those it uses."""
        groups = {PlatformTables.DELETION_AUDITS, PlatformTables.REVOCATIONS}
        if self.produces:
            groups.add(PlatformTables.OUTBOX)
        if self.event_handlers:
            groups.add(PlatformTables.INBOX)
        if self.issues_codes:
            groups.add(PlatformTables.CODE_COUNTERS)
        return frozenset(groups)

    @property
    def all_metadata(self) -> list[MetaData]:
        """The platform tables the service uses and its own, which live in one database."""
        used = self.platform_tables
        return [PLATFORM_METADATA[g] for g in PlatformTables if g in used] + [self.metadata]
