"""A consumer service that exists only in the tests: it records the contact events it applies.

``ledger_entries`` has no unique constraint on purpose: an event applied twice
would show up as two rows, so "exactly once" can be counted, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Integer, String, insert
from sqlalchemy.orm import Mapped, mapped_column

from lkern.events.contacts import (
    ContactCreated,
    ContactDeleted,
    ContactRestored,
    ContactUpdated,
)
from lkern.platform.db import Model, service_metadata
from lkern.platform.events.handlers import EventHandlers, ReceivedEvent
from lkern.platform.service import ServiceDefinition
from lkern.platform.uow import UnitOfWork


class LedgerBase(Model):
    __abstract__ = True
    metadata = service_metadata()


class LedgerEntry(LedgerBase):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(255))
    contact_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]


@dataclass
class Behaviour:
    """How the handler behaves, switchable by a test."""

    failing_names: set[str] = field(default_factory=set)
    #: Names whose handler breaks a unique constraint of its own (not the inbox's).
    clashing_names: set[str] = field(default_factory=set)
    calls: list[tuple[str, float]] = field(default_factory=list)


BEHAVIOUR = Behaviour()
handlers = EventHandlers()


# ORM objects, so the session's path of the inbox is tested too.
@handlers.on(ContactCreated, ContactUpdated, ContactDeleted, ContactRestored, session=True)
async def record(uow: UnitOfWork, event: ReceivedEvent[ContactCreated]) -> None:
    import time

    BEHAVIOUR.calls.append((event.data.name, time.monotonic()))
    if event.data.name in BEHAVIOUR.failing_names:
        raise RuntimeError(f"ledger cannot take {event.data.name}")
    if event.data.name in BEHAVIOUR.clashing_names:
        entry = {
            "id": -1,
            "event_id": event.id,
            "event_type": event.envelope.type,
            "contact_id": str(event.data.id),
            "name": event.data.name,
            "version": event.data.version,
        }
        await uow.session.execute(insert(LedgerEntry).values(entry))
        await uow.session.execute(insert(LedgerEntry).values(entry))  # the same primary key
    uow.session.add(
        LedgerEntry(
            event_id=event.id,
            event_type=event.envelope.type,
            contact_id=str(event.data.id),
            name=event.data.name,
            version=event.data.version,
        )
    )


LEDGER = ServiceDefinition(
    name="ledger",
    code="test",
    title="Ledger (tests only)",
    description="Records contact events.",
    version="0.0.0",
    rest_port=0,
    metadata=LedgerBase.metadata,
    routers=[],
    migrations_dir=Path(__file__).parent / "no-migrations",
    handlers=handlers,
)
