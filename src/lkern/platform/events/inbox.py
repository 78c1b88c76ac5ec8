"""The inbox: an event is applied once per consumer group, however often it arrives.

The handlers of an event run in one transaction with the insert of its id
into ``processed_events``; a redelivered event finds its id there and
changes nothing. The id is inserted before the handlers run, so that insert
alone decides what is a duplicate: an integrity error of a handler's own is
a failure like any other, retried and then parked.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy import String, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import PLATFORM_METADATA, PlatformBase, PlatformTables, utcnow
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


class AlreadyApplied(Exception):
    """Another consumer of the group recorded the event first."""


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
    try:
        [outcome] = await apply_events(
            uow, handlers, group, [envelope], tracer=tracer, system=system
        )
    except AlreadyApplied:
        # Another replica applied it between our check and our insert.
        return Outcome.DUPLICATE
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

    One inbox lookup, one inbox insert and one commit serve the whole batch,
    which is what lets a consumer keep up with a busy producer. Raises
    AlreadyApplied when another consumer recorded one of them meanwhile.

    Each event's handlers run in a CONSUMER span, the child of the span its
    ``traceparent`` names (the group's tracer unless ``tracer`` is given;
    ``system`` is the broker's ``messaging.system``).
    """
    if not any(handlers.for_type(envelope.type) for envelope in envelopes):
        return [Outcome.IGNORED] * len(envelopes)
    ids = [uuid.UUID(envelope.id) for envelope in envelopes]
    outcomes: list[Outcome] = []
    async with uow:
        seen = set(
            await uow.session.scalars(
                select(ProcessedEvent.event_id).where(
                    ProcessedEvent.consumer_group == group, ProcessedEvent.event_id.in_(ids)
                )
            )
        )
        todo: list[tuple[CloudEvent, uuid.UUID]] = []
        for envelope, event_id in zip(envelopes, ids, strict=True):
            if not handlers.for_type(envelope.type):
                outcomes.append(Outcome.IGNORED)
            elif event_id in seen:
                outcomes.append(Outcome.DUPLICATE)
            else:
                seen.add(event_id)
                todo.append((envelope, event_id))
                outcomes.append(Outcome.PROCESSED)
        if todo:
            await _record(uow, group, todo)
        spans = tracer or tracer_of(group)
        for envelope, _ in todo:
            received = ReceivedEvent(envelope, envelope.parsed_data())
            span = spans.start_span(
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
            # Current for the handlers (their statements, their log lines), and
            # ended with the error, if one escapes.
            with trace.use_span(span, end_on_exit=True):
                for handler in handlers.for_type(envelope.type):
                    await handler(uow, received)
        await uow.commit()
    return outcomes


async def _record(
    uow: UnitOfWork, group: str, todo: Sequence[tuple[CloudEvent, uuid.UUID]]
) -> None:
    """Insert the events' ids; on PostgreSQL a concurrent insert of one waits for the
    other transaction and fails only if it committed."""
    now = utcnow()
    rows = [
        {"event_id": event_id, "consumer_group": group, "topic": envelope.type, "processed_at": now}
        for envelope, event_id in todo
    ]
    try:
        await uow.session.execute(insert(ProcessedEvent), rows)
    except IntegrityError as exc:
        raise AlreadyApplied(str(exc)) from exc
