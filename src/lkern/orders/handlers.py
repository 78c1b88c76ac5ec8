"""Orders' event handlers: the contacts read model."""

from __future__ import annotations

import functools

from sqlalchemy import Insert, Table, bindparam

from lkern.events.contacts import (
    ContactCreated,
    ContactData,
    ContactDeleted,
    ContactPermanentlyDeleted,
    ContactRestored,
    ContactUpdated,
)
from lkern.orders.models import ContactView
from lkern.platform.db import conflict_insert, utcnow
from lkern.platform.events.handlers import EventHandlers, ReceivedEvent
from lkern.platform.uow import UnitOfWork

handlers = EventHandlers()

# Newer than any real version: nothing may bring a purged contact back. The
# largest the column (a 32-bit integer) holds: 2**62 failed on PostgreSQL, and
# every purge went to the dead letters.
PURGED_VERSION = 2**31 - 1


_SYNCED = ("name", "email", "is_active", "deleted", "version", "synced_at")


@functools.cache
def _sync_statement(dialect: str) -> Insert:
    """Insert the contact's view, or bring it up to this version: one statement,
    where reading the view first cost a round trip per event."""
    table: Table = ContactView.__table__  # type: ignore[assignment]
    stmt = conflict_insert(table, dialect).values(
        {column: bindparam(column) for column in ("contact_id", *_SYNCED)}
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.contact_id],
        set_={column: stmt.excluded[column] for column in _SYNCED},
        # An older state arriving late, on another topic, changes nothing.
        where=table.c.version < stmt.excluded.version,
    )


@handlers.on(ContactCreated, ContactUpdated, ContactDeleted, ContactRestored)
async def sync_contact(uow: UnitOfWork, event: ReceivedEvent[ContactData]) -> None:
    contact = event.data
    await uow.execute(
        _sync_statement(uow.dialect),
        contact_id=contact.id,
        name=contact.name,
        email=contact.email,
        is_active=contact.is_active,
        deleted=contact.deleted_at is not None,
        version=contact.version,
        synced_at=utcnow(),
    )


@functools.cache
def _purge_statement(dialect: str) -> Insert:
    """Mark the contact's view purged, creating it if the contact never reached orders."""
    table: Table = ContactView.__table__  # type: ignore[assignment]
    stmt = conflict_insert(table, dialect).values(
        contact_id=bindparam("contact_id"),
        name="",
        email="",
        is_active=False,
        deleted=True,
        version=PURGED_VERSION,
        synced_at=bindparam("synced_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.contact_id],
        set_={
            column: stmt.excluded[column]
            for column in ("is_active", "deleted", "version", "synced_at")
        },
    )


@handlers.on(ContactPermanentlyDeleted)
async def forget_contact(uow: UnitOfWork, event: ReceivedEvent[ContactPermanentlyDeleted]) -> None:
    await uow.execute(_purge_statement(uow.dialect), contact_id=event.data.id, synced_at=utcnow())
