"""The transactional outbox (§5): events written in the transaction of their change.

Use cases never talk to the broker. The unit of work writes each event as an
``outbox`` row in the transaction of the change, so an event exists exactly
when its change was committed; the relay (:mod:`relay`) publishes it later.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from lkern.events import EventData
from lkern.platform.db import (
    PLATFORM_METADATA,
    STATEMENTS_KEPT,
    PlatformBase,
    PlatformTables,
    numbered_markers,
    numbered_values,
    utcnow,
)
from lkern.platform.events.envelope import build_event

NOTIFY_CHANNEL = "lkern_outbox"


class OutboxMessage(PlatformBase):
    metadata = PLATFORM_METADATA[PlatformTables.OUTBOX]
    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "key",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    # Insertion order; per aggregate, insertion order is commit order because
    # changes to one aggregate are serialised by its row (version check).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    topic: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    data: EventData
    subject: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event as its outbox row stores it."""

    event_id: uuid.UUID
    topic: str
    key: str
    payload: str


def outbox_rows(service: str, events: Sequence[PendingEvent]) -> list[OutboxRow]:
    """The rows for events emitted during one unit of work, enveloped and validated."""
    rows = []
    for pending in events:
        envelope = build_event(service, pending.data, pending.subject)
        rows.append(
            OutboxRow(
                event_id=uuid.UUID(envelope.id),
                topic=envelope.type,
                key=envelope.subject,
                payload=envelope.encode().decode(),
            )
        )
    return rows


_WRITTEN_COLUMNS = ("event_id", "topic", "key", "payload", "created_at")
#: 5 parameters a row: far below PostgreSQL's 32,767 and SQLite's 32,766.
OUTBOX_ROWS_PER_STATEMENT = 1000


@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def _outbox_insert(count: int, notify: bool) -> Insert | Select[tuple[Any]]:
    """The statement writing ``count`` rows, built once for the sizes in use (one
    event per change is the common case; an import writes up to 1,000)."""
    table: Table = OutboxMessage.__table__  # type: ignore[assignment]
    rows = numbered_markers(table, _WRITTEN_COLUMNS, count)
    # Of the table, not the mapped class: with the class, the ORM would take
    # the parameters for rows of a bulk insert.
    inserted = insert(table).values(rows[0] if count == 1 else rows)
    if not notify:
        return inserted
    # The NOTIFY rides in the same statement (a data-modifying WITH runs in
    # full whatever the outer SELECT reads): one round trip for both.
    written = inserted.returning(table.c.seq).cte("written")
    return select(func.pg_notify(NOTIFY_CHANNEL, "")).select_from(written).limit(1)


def outbox_statements(
    service: str, events: Sequence[PendingEvent], dialect: str
) -> Iterator[tuple[Insert | Select[tuple[Any]], dict[str, object]]]:
    """The statements (and their parameters) that write the events' rows: at most
    OUTBOX_ROWS_PER_STATEMENT rows each, so a change with thousands of events (an
    import) stays below the drivers' parameter limits. On PostgreSQL each also
    NOTIFYs the relays, which hear it at commit."""
    rows = outbox_rows(service, events)
    now = utcnow()
    notify = dialect == "postgresql"
    for start in range(0, len(rows), OUTBOX_ROWS_PER_STATEMENT):
        chunk = rows[start : start + OUTBOX_ROWS_PER_STATEMENT]
        params = numbered_values(
            _WRITTEN_COLUMNS,
            ((row.event_id, row.topic, row.key, row.payload, now) for row in chunk),
        )
        yield _outbox_insert(len(chunk), notify), params


async def write_outbox(session: AsyncSession, service: str, events: Sequence[PendingEvent]) -> None:
    """Insert the events' rows in the session's transaction and wake the relays.

    A Core statement, not ORM objects: nothing reads the rows back, so the
    ORM's flush bookkeeping would be paid for nothing. On PostgreSQL
    the NOTIFY is delivered at commit, to the relays of every replica.
    """
    dialect = session.get_bind().dialect.name
    for stmt, params in outbox_statements(service, events, dialect):
        await session.execute(stmt, params)
