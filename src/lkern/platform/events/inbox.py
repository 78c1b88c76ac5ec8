"""The inbox: an event is applied once per consumer group, however often it arrives.

The handlers of an event run in one transaction with the insert of its id
into ``processed_events``; a redelivered event finds its id there and
changes nothing. The id is inserted before the handlers run, so that insert
alone decides what is a duplicate: an integrity error of a handler's own is
a failure like any other, retried and then parked.

The transaction runs below the ORM (``uow.direct()``) unless a handler of the
batch asked for the ORM session (``EventHandlers.on(..., session=True)``):
the session cost an event more than twice its statements' CPU
(docs/benchmarks.md, "The consumer below the ORM").
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy import Insert, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import (
    PLATFORM_METADATA,
    STATEMENTS_KEPT,
    PlatformBase,
    PlatformTables,
    conflict_insert,
    numbered_markers,
    numbered_values,
    utcnow,
)
from lkern.platform.events.envelope import CloudEvent
from lkern.platform.events.handlers import EventHandlers, ReceivedEvent
from lkern.platform.telemetry import context_of
from lkern.platform.telemetry import tracer as tracer_of
from lkern.platform.uow import UnitOfWork


class ProcessedEvent(PlatformBase):
    """The inbox: events a consumer group has applied."""

    metadata = PLATFORM_METADATA[PlatformTables.INBOX]
    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consumer_group: Mapped[str] = mapped_column(String(128), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


async def apply_event(
    uow: UnitOfWork,
    handlers: EventHandlers,
    group: str,
    envelope: CloudEvent,
    *,
    tracer: Tracer | None = None,
    system: str | None = None,
) -> Outcome:
    """Run the handlers and record the event in the inbox, in one transaction."""
    [outcome] = await apply_events(uow, handlers, group, [envelope], tracer=tracer, system=system)
    return outcome


async def apply_events(
    uow: UnitOfWork,
    handlers: EventHandlers,
    group: str,
    envelopes: Sequence[CloudEvent],
    *,
    tracer: Tracer | None = None,
    system: str | None = None,
) -> list[Outcome]:
    """Apply events in one transaction, in order: all of them or, on any error, none.

    One inbox insert and one commit serve the whole batch, which is what lets
    a consumer keep up with a busy producer. An event another consumer of the
    group recorded first, or that came twice in the batch, is a duplicate.

    Each event's handlers run in a CONSUMER span, the child of the span its
    ``traceparent`` names (the group's tracer unless ``tracer`` is given;
    ``system`` is the broker's ``messaging.system``).
    """
    handled: dict[uuid.UUID, CloudEvent] = {}
    for envelope in envelopes:
        if handlers.for_type(envelope.type):
            handled.setdefault(uuid.UUID(envelope.id), envelope)
    if not handled:
        return [Outcome.IGNORED] * len(envelopes)
    spans = tracer or tracer_of(group)
    if not handlers.need_session(envelope.type for envelope in handled.values()):
        uow = uow.direct()
    async with uow:
        recorded = await _record(uow, group, handled)
        for event_id, envelope in handled.items():
            if event_id not in recorded:
                continue
            received = ReceivedEvent(envelope, envelope.parsed_data())
            # Current for the handlers (their statements, their log lines), and
            # ended with the error, if one escapes.
            with trace.use_span(_span(spans, envelope, group, system), end_on_exit=True):
                for handler in handlers.for_type(envelope.type):
                    await handler(uow, received)
        await uow.commit()
    outcomes: list[Outcome] = []
    for envelope in envelopes:
        event_id = uuid.UUID(envelope.id)
        if not handlers.for_type(envelope.type):
            outcomes.append(Outcome.IGNORED)
        elif event_id in recorded:
            recorded.discard(event_id)  # a second time in the batch is a duplicate
            outcomes.append(Outcome.PROCESSED)
        else:
            outcomes.append(Outcome.DUPLICATE)
    return outcomes


def _span(spans: Tracer, envelope: CloudEvent, group: str, system: str | None) -> trace.Span:
    return spans.start_span(
        f"process {envelope.type}",
        context=context_of(envelope.traceparent),
        kind=SpanKind.CONSUMER,
        attributes={
            **({"messaging.system": system} if system else {}),
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": envelope.type,
            "messaging.consumer.group.name": group,
            "messaging.message.id": envelope.id,
            "cloudevents.event_id": envelope.id,
            "cloudevents.event_type": envelope.type,
            "cloudevents.event_source": envelope.source,
            "cloudevents.event_subject": envelope.subject,
        },
    )


_RECORDED = ("event_id", "consumer_group", "topic", "processed_at")


# Bounded: batch sizes vary up to the fetch's 500, and each size's statement (4
# markers a row) is kept compiled for as long as it is cached (the reader's
# cache is weak); unbounded, every size seen would stay for the process's life.
@functools.lru_cache(maxsize=STATEMENTS_KEPT)
def _inbox_insert(dialect: str, count: int) -> Insert:
    """Record ``count`` events, skipping the ids the group holds; answers the ids it
    recorded. On PostgreSQL an id another transaction is recording waits for that
    one, and is skipped only if it committed."""
    table: Table = ProcessedEvent.__table__  # type: ignore[assignment]
    stmt = conflict_insert(table, dialect).values(numbered_markers(table, _RECORDED, count))
    return stmt.on_conflict_do_nothing().returning(table.c.event_id)


#: 4 parameters a row: far below PostgreSQL's 32,767 and SQLite's 32,766.
_ROWS_PER_STATEMENT = 1000


async def _record(
    uow: UnitOfWork, group: str, events: Mapping[uuid.UUID, CloudEvent]
) -> set[uuid.UUID]:
    now = utcnow()
    rows = [(event_id, group, envelope.type, now) for event_id, envelope in events.items()]
    recorded: set[uuid.UUID] = set()
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        answered = await uow.rows(
            _inbox_insert(uow.dialect, len(chunk)), **numbered_values(_RECORDED, chunk)
        )
        recorded.update(row["event_id"] for row in answered)
    return recorded
