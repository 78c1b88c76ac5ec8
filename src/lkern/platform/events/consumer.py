"""Consuming events: declared handlers, an inbox for idempotency, retries, dead letters.

Each service consumes as one group (its name). For every event the handlers
run inside one unit of work together with the inbox insert, so an event is
applied once however often it is delivered. A handler that keeps failing is
retried with exponential backoff and jitter, then the event is parked as a
dead letter (a row in the service's database and a message on
``<topic>.dlq``) and the consumer moves on; dead letters can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import String, Text, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from lkern.events import EventData
from lkern.platform.db import PLATFORM_METADATA, IdMixin, PlatformBase, PlatformTables, utcnow
from lkern.platform.events.broker import (
    Broker,
    BrokerUnavailable,
    IncomingMessage,
    OutgoingMessage,
    Subscription,
)
from lkern.platform.events.envelope import CONTENT_TYPE, CloudEvent, MalformedEvent, decode_event
from lkern.platform.logging import current_service
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.tracing import current_trace, new_trace, parse_traceparent
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=EventData)


class ProcessedEvent(PlatformBase):
    """The inbox: events a consumer group has applied."""

    metadata = PLATFORM_METADATA[PlatformTables.INBOX]
    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consumer_group: Mapped[str] = mapped_column(String(128), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetterStatus(StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"


class DeadLetter(IdMixin, PlatformBase):
    metadata = PLATFORM_METADATA[PlatformTables.INBOX]
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("event_id", "consumer_group"),)

    event_id: Mapped[str] = mapped_column(String(64))
    consumer_group: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=DeadLetterStatus.PENDING, index=True)
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class ReceivedEvent(Generic[D]):
    envelope: CloudEvent
    data: D

    @property
    def id(self) -> str:
        return self.envelope.id


Handler = Callable[[UnitOfWork, ReceivedEvent[Any]], Awaitable[None]]


class EventHandlers:
    """The handlers of one service, by event type."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, *event_classes: type[EventData]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for cls in event_classes:
                self._handlers.setdefault(cls.event_type, []).append(handler)
            return handler

        return register

    @property
    def topics(self) -> list[str]:
        return sorted(self._handlers)

    def for_type(self, event_type: str) -> list[Handler]:
        return self._handlers.get(event_type, [])

    def __bool__(self) -> bool:
        return bool(self._handlers)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def delay(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based): doubling, plus up to 25% jitter.

        The jitter only ever adds, so each delay is longer than the one before.
        """
        base = min(self.max_seconds, self.base_seconds * float(2 ** (retry - 1)))
        return base * (1 + random.uniform(0, 0.25))


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


async def apply_event(
    uow: UnitOfWork, handlers: EventHandlers, group: str, envelope: CloudEvent
) -> Outcome:
    """Run the handlers and record the event in the inbox, in one transaction."""
    try:
        [outcome] = await apply_events(uow, handlers, group, [envelope])
    except IntegrityError:
        # Another replica applied it between our check and our commit.
        return Outcome.DUPLICATE
    return outcome


async def apply_events(
    uow: UnitOfWork, handlers: EventHandlers, group: str, envelopes: Sequence[CloudEvent]
) -> list[Outcome]:
    """Apply events in one transaction, in order: all of them or, on any error, none.

    One inbox lookup and one commit serve the whole batch, which is what lets
    a consumer keep up with a busy producer.
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
        for envelope, event_id in zip(envelopes, ids, strict=True):
            todo = handlers.for_type(envelope.type)
            if not todo:
                outcomes.append(Outcome.IGNORED)
                continue
            if event_id in seen:
                outcomes.append(Outcome.DUPLICATE)
                continue
            seen.add(event_id)
            received = ReceivedEvent(envelope, envelope.parsed_data())
            trace_token = current_trace.set(parse_traceparent(envelope.traceparent) or new_trace())
            try:
                for handler in todo:
                    await handler(uow, received)
            finally:
                current_trace.reset(trace_token)
            uow.session.add(
                ProcessedEvent(event_id=event_id, consumer_group=group, topic=envelope.type)
            )
            outcomes.append(Outcome.PROCESSED)
        await uow.commit()
    return outcomes


@dataclass
class EventConsumer:
    """The consuming loop of one service replica."""

    service: str
    broker: Broker
    handlers: EventHandlers
    unit_of_work: Callable[[], UnitOfWork]
    metrics: ServiceMetrics | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fetch_timeout: float = 0.5
    #: Aggregates handled side by side within a batch; each holds a database connection.
    concurrency: int = 8

    @property
    def group(self) -> str:
        return self.service

    async def run(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            try:
                await self.broker.ensure_topics(self.handlers.topics)
                async with self.broker.subscribe(self.group, self.handlers.topics) as subscription:
                    failures = 0
                    await self._consume(subscription, stopping)
            except BrokerUnavailable as exc:
                failures += 1
                delay = min(10.0, 0.5 * 2**failures)
                logger.warning(
                    "%s consumer: broker unavailable (%s); retrying in %.1fs",
                    self.service,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)

    async def _consume(self, subscription: Subscription, stopping: asyncio.Event) -> None:
        """Fetch, handle, commit; a batch's offsets are committed while the next is handled.

        Waiting for the commit before fetching again put a broker round trip
        in the way of every event that arrived meanwhile. One commit at a time
        is in flight, so offsets still move forward in order, and the last is
        awaited before the subscription closes.
        """
        committing: asyncio.Task[None] | None = None
        try:
            while not stopping.is_set():
                messages = await subscription.fetch(self.fetch_timeout)
                if not messages:
                    continue
                done = await self.handle_batch(messages, stopping)
                if committing is not None:
                    await committing
                committing = asyncio.create_task(subscription.commit(done))
        finally:
            if committing is not None:
                await committing

    async def handle_batch(
        self, messages: Sequence[IncomingMessage], stopping: asyncio.Event
    ) -> list[IncomingMessage]:
        """Handle a fetched batch; returns the messages whose offsets may be committed.

        Events of one aggregate (one key) are handled one after another in the
        order received; different aggregates are handled side by side, a few at
        a time. Offsets are committed once per batch, not once per event: a
        crash redelivers at most one batch, and the inbox skips what was done.
        When stopping, each aggregate's event in hand is finished and the rest
        is left for the next consumer.

        The whole batch is first applied as one transaction. Only when that
        fails (a malformed event, a handler error, another replica racing us)
        is it handled event by event, with retries and dead letters.
        """
        if len(messages) > 1 and await self._apply_together(messages):
            return list(messages)
        queues: dict[str | None, list[IncomingMessage]] = {}
        for message in messages:
            queues.setdefault(message.key, []).append(message)
        handled: set[tuple[str, int, int]] = set()
        slots = asyncio.Semaphore(self.concurrency)

        async def in_order(queue: list[IncomingMessage]) -> None:
            for message in queue:
                if stopping.is_set():
                    return
                async with slots:
                    await self.handle(message)
                handled.add((message.topic, message.partition, message.offset))

        async with asyncio.TaskGroup() as group:
            for queue in queues.values():
                group.create_task(in_order(queue))
        # Per partition, only the unbroken run of handled messages may be committed.
        committable, blocked = [], set()
        for message in messages:
            partition = (message.topic, message.partition)
            if partition in blocked:
                continue
            if (message.topic, message.partition, message.offset) in handled:
                committable.append(message)
            else:
                blocked.add(partition)
        return committable

    async def _apply_together(self, messages: Sequence[IncomingMessage]) -> bool:
        try:
            envelopes = [decode_event(message.value) for message in messages]
        except MalformedEvent:
            return False
        service_token = current_service.set(self.service)
        try:
            outcomes = await apply_events(self.unit_of_work(), self.handlers, self.group, envelopes)
        except Exception as exc:
            logger.info(
                "%s: %d events failed together (%r); handling them one by one",
                self.service,
                len(envelopes),
                exc,
            )
            return False
        finally:
            current_service.reset(service_token)
        for envelope, outcome in zip(envelopes, outcomes, strict=True):
            self._observe(envelope, outcome)
        return True

    def _observe(self, envelope: CloudEvent, outcome: Outcome) -> None:
        self._count(envelope.type, outcome.value)
        if outcome is Outcome.PROCESSED and self.metrics is not None:
            self.metrics.consumer_lag.labels(envelope.type).observe(
                (utcnow() - envelope.time).total_seconds()
            )

    async def handle(self, message: IncomingMessage) -> None:
        try:
            envelope = decode_event(message.value)
        except MalformedEvent as exc:
            await self._dead_letter(message, None, f"malformed event: {exc}", attempts=1)
            return
        trace = parse_traceparent(envelope.traceparent) or new_trace()
        trace_token = current_trace.set(trace)
        service_token = current_service.set(self.service)
        try:
            await self._handle_with_retries(message, envelope)
        finally:
            current_service.reset(service_token)
            current_trace.reset(trace_token)

    async def _handle_with_retries(self, message: IncomingMessage, envelope: CloudEvent) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                outcome = await apply_event(
                    self.unit_of_work(), self.handlers, self.group, envelope
                )
            except MalformedEvent as exc:
                await self._dead_letter(message, envelope, f"invalid data: {exc}", attempts=attempt)
                return
            except Exception as exc:
                self._count(envelope.type, "failed")
                if attempt > self.retry.retries:
                    logger.error(
                        "%s failed %d times, dead-lettering: %r", envelope.type, attempt, exc
                    )
                    await self._dead_letter(message, envelope, repr(exc), attempts=attempt)
                    return
                delay = self.retry.delay(attempt)
                logger.warning(
                    "%s %s failed (attempt %d), retrying in %.2fs: %r",
                    envelope.type,
                    envelope.id,
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                continue
            self._observe(envelope, outcome)
            logger.debug(
                "%s %s %s in %.1f ms",
                envelope.type,
                envelope.id,
                outcome.value,
                (time.perf_counter() - started) * 1000,
            )
            return

    async def _dead_letter(
        self, message: IncomingMessage, envelope: CloudEvent | None, error: str, *, attempts: int
    ) -> None:
        """Park the event: a row to list and replay, and a message on ``<topic>.dlq``."""
        event_id = (
            envelope.id if envelope else f"{message.topic}:{message.partition}:{message.offset}"
        )
        payload = message.value.decode(errors="replace")
        async with self.unit_of_work() as uow:
            existing = await uow.session.scalar(
                select(DeadLetter).where(
                    DeadLetter.event_id == event_id, DeadLetter.consumer_group == self.group
                )
            )
            if existing is None:
                uow.session.add(
                    DeadLetter(
                        event_id=event_id,
                        consumer_group=self.group,
                        topic=message.topic,
                        event_type=envelope.type if envelope else None,
                        payload=payload,
                        error=error[:4000],
                        attempts=attempts,
                    )
                )
            else:
                existing.status = DeadLetterStatus.PENDING
                existing.error = error[:4000]
                existing.attempts = attempts
                existing.failed_at = utcnow()
            await uow.commit()
        dlq_message = OutgoingMessage(
            topic=f"{message.topic}.dlq",
            key=message.key or event_id,
            value=json.dumps(
                {
                    "event": json.loads(payload) if envelope else payload,
                    "error": error,
                    "attempts": attempts,
                    "consumer_group": self.group,
                    "failed_at": utcnow().isoformat(),
                }
            ).encode(),
            headers={
                "content-type": "application/json",
                "lkern-original-content-type": CONTENT_TYPE,
                "lkern-error": error[:500],
                "lkern-attempts": str(attempts),
                "lkern-consumer-group": self.group,
            },
        )
        results = await self.broker.publish([dlq_message])
        if results[0] is not None:
            # The row is the record that counts; the topic copy is for tooling.
            logger.warning("dead letter not copied to %s: %r", dlq_message.topic, results[0])
        self._count(message.topic, "dead_lettered")

    def _count(self, topic: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.consumer_events.labels(topic, outcome).inc()


async def replay_dead_letters(
    unit_of_work: Callable[[], UnitOfWork],
    handlers: EventHandlers,
    group: str,
    ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, str]]:
    """Apply parked events again, once each (the inbox still guards); returns id, result."""
    async with unit_of_work() as uow:
        stmt = select(DeadLetter).where(
            DeadLetter.consumer_group == group, DeadLetter.status == DeadLetterStatus.PENDING
        )
        if ids is not None:
            stmt = stmt.where(DeadLetter.id.in_(list(ids)))
        letters = list((await uow.session.scalars(stmt.order_by(DeadLetter.failed_at))).all())
    results: list[tuple[uuid.UUID, str]] = []
    for letter in letters:
        try:
            envelope = decode_event(letter.payload.encode())
            outcome = (await apply_event(unit_of_work(), handlers, group, envelope)).value
        except Exception as exc:
            results.append((letter.id, f"failed: {exc!r}"))
            continue
        async with unit_of_work() as uow:
            stored = await uow.session.get_one(DeadLetter, letter.id)
            stored.status = DeadLetterStatus.REPLAYED
            stored.replayed_at = utcnow()
            await uow.commit()
        results.append((letter.id, outcome))
    return results
