"""The event consumer's loop: fetch, apply, retry, park, commit offsets.

Each service consumes as one group (its name). Events are applied through
the inbox (:mod:`inbox`), so an event is applied once however often it is
delivered. A handler that keeps failing is retried with exponential backoff
and jitter, then the event is parked as a dead letter (:mod:`dead_letters`)
and the consumer moves on. A message that cannot even be read (not UTF-8,
not JSON, not a CloudEvent, data off its schema) is parked at once.

When a dead letter cannot be written (its table or database is away), the
message is not skipped: the consumer commits what it finished before it,
leaves the subscription, waits with growing backoff, and reads on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer

from lkern.platform.background import left_running
from lkern.platform.db import utcnow
from lkern.platform.events.broker import Broker, BrokerUnavailable, IncomingMessage, Subscription
from lkern.platform.events.dead_letters import park
from lkern.platform.events.envelope import CloudEvent, MalformedEvent, decode_event
from lkern.platform.events.handlers import EventHandlers
from lkern.platform.events.inbox import Outcome, apply_event, apply_events
from lkern.platform.logging import current_service
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.telemetry import context_of
from lkern.platform.telemetry import tracer as tracer_of
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


class ParkingFailed(RuntimeError):
    """A dead letter could not be written; the message must be read again later."""


class ConsumerStalled(RuntimeError):
    """A batch stopped at a message that could not be parked."""

    def __init__(self, cause: ParkingFailed, committable: list[IncomingMessage]) -> None:
        super().__init__(str(cause))
        self.committable = committable


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
    #: The service's tracer: each event is handled in a span of its own (inbox.py).
    tracer: Tracer | None = None
    #: Whether the current subscription handled a batch; a stall after progress
    #: starts the backoff afresh.
    _progressed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tracer is None:
            self.tracer = tracer_of(self.service)

    @property
    def group(self) -> str:
        return self.service

    async def run(self, stopping: asyncio.Event) -> None:
        failures = 0
        topics = self.handlers.topics
        while not stopping.is_set():
            self._progressed = False
            try:
                await self.broker.ensure_topics([*topics, *(f"{topic}.dlq" for topic in topics)])
                subscription = self.broker.subscribe(self.group, topics)
                if not await _joined(subscription, stopping):
                    return
                try:
                    await self._consume(subscription, stopping)
                finally:
                    await subscription.stop()
                failures = 0
            except (BrokerUnavailable, ConsumerStalled) as exc:
                failures = 0 if self._progressed else failures
                failures += 1
                delay = min(10.0, 0.5 * 2**failures)
                what = "broker unavailable" if isinstance(exc, BrokerUnavailable) else "stalled"
                logger.warning(
                    "%s consumer: %s (%s); reading on in %.1fs",
                    self.service,
                    what,
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
                try:
                    done = await self.handle_batch(messages, stopping)
                except ConsumerStalled as stalled:
                    if committing is not None:
                        await committing
                    committing = None
                    await subscription.commit(stalled.committable)
                    raise
                self._progressed = True
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
        is it handled event by event, with retries and dead letters. Raises
        ConsumerStalled, with what may be committed, when a dead letter could
        not be written.
        """
        if len(messages) > 1 and await self._apply_together(messages):
            return list(messages)
        queues: dict[str | None, list[IncomingMessage]] = {}
        for message in messages:
            queues.setdefault(message.key, []).append(message)
        handled: set[tuple[str, int, int]] = set()
        slots = asyncio.Semaphore(self.concurrency)
        stalls: list[ParkingFailed] = []

        async def in_order(queue: list[IncomingMessage]) -> None:
            for message in queue:
                if stopping.is_set():
                    return
                try:
                    async with slots:
                        await self.handle(message)
                except ParkingFailed as exc:
                    stalls.append(exc)
                    return
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
        if stalls:
            raise ConsumerStalled(stalls[0], committable)
        return committable

    async def _apply_together(self, messages: Sequence[IncomingMessage]) -> bool:
        if any(message.defect is not None for message in messages):
            return False
        try:
            envelopes = [decode_event(message.value) for message in messages]
        except MalformedEvent:
            return False
        service_token = current_service.set(self.service)
        try:
            outcomes = await apply_events(
                self.unit_of_work(),
                self.handlers,
                self.group,
                envelopes,
                tracer=self.tracer,
                system=self.broker.messaging_system,
            )
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
        """Apply one message, or park it; raises ParkingFailed if parking failed."""
        if message.defect is not None:
            await self._dead_letter(message, None, f"malformed event: {message.defect}", attempts=1)
            return
        try:
            envelope = decode_event(message.value)
        except MalformedEvent as exc:
            await self._dead_letter(message, None, f"malformed event: {exc}", attempts=1)
            return
        service_token = current_service.set(self.service)
        # The event's trace is current across its attempts, so the log lines
        # about retries and dead letters carry its trace id too.
        remote = context_of(envelope.traceparent)
        trace_token = otel_context.attach(remote) if remote is not None else None
        try:
            await self._handle_with_retries(message, envelope)
        finally:
            if trace_token is not None:
                otel_context.detach(trace_token)
            current_service.reset(service_token)

    async def _handle_with_retries(self, message: IncomingMessage, envelope: CloudEvent) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                outcome = await apply_event(
                    self.unit_of_work(),
                    self.handlers,
                    self.group,
                    envelope,
                    tracer=self.tracer,
                    system=self.broker.messaging_system,
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
        try:
            await park(
                self.unit_of_work,
                self.broker,
                self.group,
                message,
                envelope,
                error,
                attempts=attempts,
            )
        except Exception as exc:
            logger.error(
                "%s: cannot park %s[%d]@%d as a dead letter (%r); it stays unread",
                self.service,
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            raise ParkingFailed(f"dead letter not written: {exc!r}") from exc
        self._count(message.topic, "dead_lettered")

    def _count(self, topic: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.consumer_events.labels(topic, outcome).inc()


def _read_outcome(join: asyncio.Future[None]) -> None:
    """Read a given-up join's error, so the loop does not report it as never retrieved."""
    if not join.cancelled() and join.exception() is not None:
        logger.debug("join ended as the consumer stopped: %r", join.exception())


async def _joined(subscription: Subscription, stopping: asyncio.Event) -> bool:
    """Start ``subscription``, unless ``stopping`` is set first (then it is closed).

    Joining a group waits for the broker's rebalance, which may take longer
    than what is left of a shutdown's grace period; a service stopping while
    its consumer joins must not wait for the join to end.
    """
    joining = asyncio.ensure_future(subscription.start())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({joining, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        # Cancelled (the grace ran out): the consumer is closed without waiting;
        # a join that had just failed has its error read, not left to the loop.
        joining.cancel()
        joining.add_done_callback(_read_outcome)
        left_running(subscription.stop(), "close a consumer given up while joining")
        raise
    finally:
        stopped.cancel()
    if joining.done():
        joining.result()  # the broker's refusal, if it refused
        return True
    joining.cancel()
    # Waited for, not awaited: a cancellation of this task itself still comes through.
    await asyncio.wait({joining})
    _read_outcome(joining)
    await subscription.stop()
    return False
