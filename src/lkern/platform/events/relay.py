"""The outbox relay (§5): publishes committed outbox rows and marks them published.

Claiming. Rows are leased (``claimed_by`` / ``claimed_until``) in a short
transaction, published outside any transaction, then marked. Only the oldest
unpublished row of each aggregate can be claimed, so however many relays run,
an aggregate's events reach the broker in commit order; on PostgreSQL the
claim also uses ``FOR UPDATE SKIP LOCKED`` so concurrent relays never wait on
or take each other's rows. A relay that dies leaves its lease to expire, and
the rows are published again by whoever comes next: delivery is at least once.
One stopped in the middle of a batch (the shutdown's grace ran out) hands the
batch back at once instead, so a restarted replica need not wait for the lease.

Failures. When the broker is away, the rows are released at once and the
relay backs off as a whole. A message the broker refuses (too large, say) is
retried on its own schedule, with growing delay, and blocks only its
aggregate: the rest of the batch is published, and the relay goes on serving
new commits at once. Each row is published in a PRODUCER span, the child of
the span its event's ``traceparent`` names: the request that wrote it. Topics
are created by the relay the first time it
publishes to them, and again when the broker says one is missing, so a broker
that was down when the service started, or one that does not create topics
on demand, still gets every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from opentelemetry.trace import Span, SpanKind, Tracer
from sqlalchemy import BigInteger, Table, any_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from lkern.platform.db import is_postgres, utcnow
from lkern.platform.events.broker import Broker, BrokerUnavailable, OutgoingMessage, UnknownTopic
from lkern.platform.events.envelope import CONTENT_TYPE
from lkern.platform.events.outbox import NOTIFY_CHANNEL, OutboxMessage
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.reads import CONNECTION_ERRORS, CompiledStatement, Row, compile_statement
from lkern.platform.telemetry import context_of, fail
from lkern.platform.telemetry import tracer as tracer_of

logger = logging.getLogger(__name__)

#: How long a stopped relay may take to hand its batch back.
RELEASE_SECONDS = 1.0


def message_of(row: OutboxMessage | ClaimedRow) -> OutgoingMessage:
    return OutgoingMessage(
        topic=row.topic,
        key=row.key,
        value=row.payload.encode(),
        headers={"content-type": CONTENT_TYPE},
    )


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    seq: int
    topic: str
    key: str
    payload: str
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one claimed batch."""

    published: int
    claimed: int
    #: Some of it could not be published because the broker could not be reached.
    broker_down: bool


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch_size: int = 200
    poll_seconds: float = 1.0
    lease_seconds: float = 30.0
    retention_seconds: float = 7 * 24 * 3600
    max_backoff_seconds: float = 5.0
    #: Claimed batches out at once (published, not yet marked); 1 is a batch at a time.
    in_flight_batches: int = 1
    #: First wait before a message the broker refused is offered again; doubles each time.
    refused_retry_seconds: float = 0.5
    max_refused_retry_seconds: float = 300.0

    def refused_retry(self, attempts: int) -> float:
        return min(
            self.max_refused_retry_seconds,
            self.refused_retry_seconds * float(2 ** min(attempts - 1, 30)),
        )


class OutboxRelay:
    """Publishes committed outbox rows; one per service replica."""

    def __init__(
        self,
        engine: AsyncEngine,
        broker: Broker,
        *,
        options: RelayOptions = RelayOptions(),
        metrics: ServiceMetrics | None = None,
        relay_id: str | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._broker = broker
        self.options = options
        self._metrics = metrics
        self.relay_id = relay_id or uuid.uuid4().hex
        self._wakeup = asyncio.Event()
        self._last_prune = 0.0
        self._postgres = is_postgres(engine)
        self._topics_created: set[str] = set()
        #: Claims begun so far: a batch that settles after a later claim wakes the relay.
        self._claims = 0
        self._tracer = tracer or tracer_of()
        self._heads_statement = _heads_statement(options.batch_size)
        self._claim_statement = _claim_statement(self.relay_id, self._postgres)
        # On PostgreSQL the claim's and the settle's statements run compiled once on
        # the driver (_driver), their seqs bound as one array.
        self._compiled = (
            _Compiled(
                heads=compile_statement(self._heads_statement, engine.dialect),
                claim=compile_statement(self._claim_statement, engine.dialect),
                published=compile_statement(_PUBLISHED_ARRAY, engine.dialect),
            )
            if self._postgres
            else None
        )

    def wake(self) -> None:
        """Called after a commit that wrote events."""
        self._wakeup.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until ``stopping`` is set; the batches in hand are always finished.

        Up to ``in_flight_batches`` claimed batches are out at once (one by
        default). With more, the next batch is claimed and sent while the broker
        acknowledges the one before and it is marked published, so an event
        committed meanwhile waits for a claim, not for a whole round; on two
        cores the extra, smaller claims cost more than that saved
        (docs/benchmarks.md). Order per aggregate holds all the same:
        the claim never takes a row while an earlier one of its aggregate is
        unpublished, so that row waits for its predecessor's batch to settle.
        """
        listener = await self._listen() if self._postgres else None
        failures = 0
        deliveries: set[asyncio.Task[Delivery]] = set()
        try:
            while not stopping.is_set():
                full, down = False, False
                try:
                    self._wakeup.clear()
                    rows = await self._claim()
                    if rows:
                        deliveries.add(asyncio.create_task(self._deliver(rows, self._claims)))
                    full = len(rows) >= self.options.batch_size
                    await self._housekeeping()
                except Exception as exc:
                    logger.warning("outbox relay round failed: %r", exc)
                    down = True
                if len(deliveries) >= self.options.in_flight_batches:
                    await asyncio.wait(deliveries, return_when=asyncio.FIRST_COMPLETED)
                down = _reap(deliveries) or down
                if down:
                    # Nothing more goes out until what is in flight has settled:
                    # more batches would only fail the same way.
                    if deliveries:
                        await asyncio.wait(deliveries)
                        _reap(deliveries)
                    # Only an unreachable broker (or a failing round) slows the
                    # relay down; a refused message waits on its own. Commits do
                    # not cut a backoff short: they would only hammer a broker
                    # that is down.
                    failures += 1
                    delay = min(self.options.max_backoff_seconds, 0.2 * 2**failures)
                    jittered = delay * random.uniform(0.8, 1.2)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), jittered)
                    continue
                failures = 0
                if not full:
                    await _wait(stopping, self._wakeup, self.options.poll_seconds)
        except asyncio.CancelledError:
            # The shutdown's grace ran out: each batch in flight hands its rows back.
            for delivery in deliveries:
                delivery.cancel()
            raise
        finally:
            try:
                await _settled(deliveries)
            finally:
                if listener is not None:
                    await listener()

    async def relay_once(self) -> tuple[int, int]:
        """Claim, publish and mark one batch; returns (published, claimed)."""
        self._wakeup.clear()
        delivery = await self._deliver(await self._claim(), self._claims)
        return delivery.published, delivery.claimed

    async def _deliver(self, rows: list[ClaimedRow], claim: int) -> Delivery:
        """Publish a claimed batch and mark it; ``claim`` is the number of its claim."""
        if not rows:
            return Delivery(0, 0, broker_down=False)
        try:
            await self._create_topics({row.topic for row in rows})
            spans = [self._publish_span(row) for row in rows]
            try:
                results = await self._broker.publish([message_of(row) for row in rows])
            except BaseException as exc:
                for span in spans:
                    fail(span, exc)
                    span.end()
                raise
            for span, error in zip(spans, results, strict=True):
                if error is not None:
                    fail(span, error)
                span.end()
            done = [row for row, error in zip(rows, results, strict=True) if error is None]
            failed = [
                (row, error) for row, error in zip(rows, results, strict=True) if error is not None
            ]
            await self._settle(done, failed)
        except asyncio.CancelledError:
            await self._release(rows)
            raise
        if self._claims != claim:
            # A claim ran while this batch was out, and may have passed over the
            # next events of its aggregates: they are claimable now.
            self._wakeup.set()
        if self._metrics is not None:
            now = utcnow()
            for row in done:
                self._metrics.outbox_published.inc()
                self._metrics.outbox_publish_lag.observe((now - row.created_at).total_seconds())
        return Delivery(len(done), len(rows), broker_down=self._report(failed, len(rows)))

    def _publish_span(self, row: ClaimedRow) -> Span:
        try:
            event = json.loads(row.payload)
        except ValueError:
            event = {}
        traceparent, event_id = event.get("traceparent"), event.get("id")
        return self._tracer.start_span(
            f"publish {row.topic}",
            context=context_of(traceparent if isinstance(traceparent, str) else None),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": self._broker.messaging_system,
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": row.topic,
                "messaging.message.id": str(event_id),
                "messaging.kafka.message.key": row.key,
                "lkern.outbox.seq": row.seq,
                "lkern.outbox.attempt": row.attempts,
            },
        )

    async def _create_topics(self, topics: set[str]) -> None:
        """Create the topics this relay has not created yet; publishing goes on regardless
        (the broker may create them itself, or say it did not)."""
        missing = sorted(topics - self._topics_created)
        if not missing:
            return
        try:
            await self._broker.ensure_topics(missing)
        except BrokerUnavailable as exc:
            logger.info("topics %s not created yet: %s", ", ".join(missing), exc)
            return
        self._topics_created.update(missing)

    def _report(self, failed: Sequence[tuple[ClaimedRow, BaseException]], claimed: int) -> bool:
        """Log what was not published; True when the broker could not be reached."""
        unavailable = [error for _, error in failed if isinstance(error, BrokerUnavailable)]
        if unavailable:
            logger.warning(
                "%d of %d events not published, the broker is unavailable: %s",
                len(unavailable),
                claimed,
                unavailable[0],
            )
        for row, error in failed:
            if isinstance(error, UnknownTopic):
                self._topics_created.discard(row.topic)
            if not isinstance(error, BrokerUnavailable):
                logger.warning(
                    "outbox row %d (%s, aggregate %s) refused by the broker on attempt %d; "
                    "its aggregate waits %.1fs: %s",
                    row.seq,
                    row.topic,
                    row.key,
                    row.attempts,
                    self.options.refused_retry(row.attempts),
                    error,
                )
        return bool(unavailable)

    async def _claim(self) -> list[ClaimedRow]:
        """Lease the oldest claimable rows, each the oldest unpublished row of its key.

        Two statements. The first finds those rows in one pass over the pending
        ones (a window over the partial index on key, seq, already in its
        order), so no plan can make it worse than that. As one statement, "no
        earlier unpublished row of its key" (NOT EXISTS), PostgreSQL planned the
        check on an outbox without statistics yet (a new or quiet one) as a
        full scan of the pending rows for each pending row: 9-28 s a claim at
        4,000 pending, the relay falling further behind the more it had to do.
        The second leases the rows found, skipping any another relay holds.
        """
        now = utcnow()
        until = now + timedelta(seconds=self.options.lease_seconds)
        # Core on the engine, built once: one claim per event at a trickle, so the ORM
        # session and building the statement afresh each time were most of its cost.
        self._claims += 1
        if self._compiled is not None:
            return await self._claim_direct(self._compiled, now, until)
        async with self._engine.begin() as connection:
            seqs = list((await connection.scalars(self._heads_statement, {"now": now})).all())
            if not seqs:
                return []
            result = await connection.execute(
                self._claim_statement, {"seqs": seqs, "now": now, "until": until}
            )
            rows = [ClaimedRow(*row) for row in result.all()]
        return sorted(rows, key=lambda row: row.seq)

    async def _claim_direct(
        self, compiled: _Compiled, now: datetime, until: datetime
    ) -> list[ClaimedRow]:
        """The claim's two statements on the driver, each on its own: the lease
        checks again what the first found (another relay may have taken a row
        since), so no transaction must join them, and none costs two round trips."""
        async with self._driver() as driver:
            heads = await _fetch(driver, compiled.heads, {"now": now})
            if not heads:
                return []
            params = {"seqs": [row["seq"] for row in heads], "now": now, "until": until}
            found = await _fetch(driver, compiled.claim, params)
        return sorted((ClaimedRow(**row) for row in found), key=lambda row: row.seq)

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """An engine connection's asyncpg connection, used below SQLAlchemy, whose
        statement handling cost more CPU than the relay's statements themselves;
        each statement commits on its own. (Statements outside any request's span
        are not traced, as the engine's events leave the relay's.)"""
        async with self._engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            try:
                yield driver
            except CONNECTION_ERRORS:
                # The pool must not hand out a connection that is gone.
                await connection.invalidate()
                raise

    async def _settle(
        self, done: Sequence[ClaimedRow], failed: Sequence[tuple[ClaimedRow, BaseException]]
    ) -> None:
        if done and self._compiled is not None:
            params = {"seqs": [row.seq for row in done], "relay": self.relay_id, "now": utcnow()}
            async with self._driver() as driver:
                await _fetch(driver, self._compiled.published, params)
            done = []
        if not (done or failed):
            return
        async with self._engine.begin() as connection:
            if done:
                await connection.execute(
                    _PUBLISHED,
                    {
                        "seqs": [row.seq for row in done],
                        "relay": self.relay_id,
                        "now": utcnow(),
                    },
                )
            if failed:
                # A row the broker could not take is released at once (the relay's
                # own backoff paces the retry); one it refused stays leased, to
                # nobody, until its own retry is due.
                now = utcnow()
                await connection.execute(
                    _TABLE.update()
                    .where(
                        _TABLE.c.seq == bindparam("row_seq"), _TABLE.c.claimed_by == self.relay_id
                    )
                    .values(
                        claimed_by=None,
                        claimed_until=bindparam("retry_at"),
                        last_error=bindparam("error"),
                    ),
                    [
                        {
                            "row_seq": row.seq,
                            "retry_at": None
                            if isinstance(error, BrokerUnavailable)
                            else now + timedelta(seconds=self.options.refused_retry(row.attempts)),
                            "error": repr(error)[:2000],
                        }
                        for row, error in failed
                    ],
                )

    async def _release(self, rows: Sequence[ClaimedRow]) -> None:
        """Hand back a batch this relay was stopped in the middle of (the shutdown's
        grace ran out), so the next relay takes it at once rather than after the
        lease; any of it that reached the broker goes out again (at least once)."""
        try:
            # Briefly: the shutdown that cancelled us is waiting.
            async with (
                asyncio.timeout(RELEASE_SECONDS),
                self._sessions() as session,
                session.begin(),
            ):
                await session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.seq.in_([row.seq for row in rows]),
                        OutboxMessage.claimed_by == self.relay_id,
                        OutboxMessage.published_at.is_(None),
                    )
                    .values(claimed_by=None, claimed_until=None),
                    execution_options={"synchronize_session": False},
                )
        except Exception as exc:
            logger.warning(
                "%d outbox rows stay leased until their lease runs out: %r", len(rows), exc
            )

    async def backlog(self) -> tuple[int, float]:
        """Unpublished rows and the age in seconds of the oldest of them."""
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxMessage.created_at)).where(
                        OutboxMessage.published_at.is_(None)
                    )
                )
            ).one()
        age = (utcnow() - _as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        return int(count), max(age, 0.0)

    async def prune(self) -> int:
        """Delete rows published longer ago than the retention period."""
        cutoff = utcnow() - timedelta(seconds=self.options.retention_seconds)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(OutboxMessage).where(OutboxMessage.published_at < cutoff),
                execution_options={"synchronize_session": False},
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def refresh_metrics(self) -> None:
        """Set the backlog gauges: when metrics are scraped, not on every round,
        where the query would add a round trip to every event's way out."""
        if self._metrics is not None:
            count, age = await self.backlog()
            self._metrics.outbox_backlog.set(count)
            self._metrics.outbox_oldest_age.set(age)

    async def _housekeeping(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_prune > 300:
            self._last_prune = loop_time
            pruned = await self.prune()
            if pruned:
                logger.info("pruned %d published outbox rows", pruned)

    async def _listen(self) -> Callable[[], Awaitable[None]] | None:
        """LISTEN on PostgreSQL so a commit anywhere wakes this relay within milliseconds."""

        def notified(*_: object) -> None:
            self._wakeup.set()

        # Held as an AsyncConnection, not a bare pooled one: handing it back may
        # close it (the pool is full of idle connections after a busy spell), and
        # closing an asyncpg connection must run where SQLAlchemy can await it.
        connection = None
        try:
            connection = await self._engine.connect()
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.add_listener(NOTIFY_CHANNEL, notified)
        except Exception as exc:
            logger.warning("LISTEN unavailable, polling only: %r", exc)
            if connection is not None:
                await connection.close()
            return None

        async def unlisten() -> None:
            try:
                await driver.remove_listener(NOTIFY_CHANNEL, notified)
            finally:
                await connection.close()

        return unlisten


_TABLE = cast(Table, OutboxMessage.__table__)
#: Rows published: unclaimed, and marked so (only those this relay still holds).
_PUBLISHED = (
    update(_TABLE)
    .where(
        _TABLE.c.seq.in_(bindparam("seqs", expanding=True)),
        _TABLE.c.claimed_by == bindparam("relay"),
    )
    .values(published_at=bindparam("now"), claimed_by=None, claimed_until=None)
)


#: The same on PostgreSQL, run below SQLAlchemy: the seqs as one array, so the SQL is
#: the same whatever the batch's size (an expanding IN is rendered per size).
_PUBLISHED_ARRAY = (
    update(_TABLE)
    .where(
        _TABLE.c.seq == any_(bindparam("seqs", type_=postgresql.ARRAY(BigInteger))),
        _TABLE.c.claimed_by == bindparam("relay"),
    )
    .values(published_at=bindparam("now"), claimed_by=None, claimed_until=None)
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """The claim's and the settle's statements as asyncpg runs them (PostgreSQL)."""

    heads: CompiledStatement
    claim: CompiledStatement
    published: CompiledStatement


async def _fetch(driver: Any, compiled: CompiledStatement, params: Mapping[str, Any]) -> list[Row]:
    records = await driver.fetch(compiled.sql, *compiled.arguments(params))
    return [compiled.row(record) for record in records]


def _heads_statement(batch_size: int) -> Any:
    """The first ``batch_size`` rows, in order, that are the oldest unpublished row of
    their key and unleased (or leased past ``:now``)."""
    table = _TABLE
    pending = (
        select(
            table.c.seq,
            table.c.claimed_until,
            func.row_number().over(partition_by=table.c.key, order_by=table.c.seq).label("place"),
        )
        .where(table.c.published_at.is_(None))
        .subquery()
    )
    return (
        select(pending.c.seq)
        .where(
            pending.c.place == 1,
            pending.c.claimed_until.is_(None) | (pending.c.claimed_until < bindparam("now")),
        )
        .order_by(pending.c.seq)
        .limit(batch_size)
    )


def _claim_statement(relay_id: str, postgres: bool) -> Any:
    """Lease the rows ``:seqs`` to ``relay_id`` that are still unpublished and unleased
    (another relay may have taken or published some since they were found)."""
    table = _TABLE
    # On PostgreSQL the seqs are one array (the claim runs compiled once, _Compiled).
    seqs = (
        table.c.seq == any_(bindparam("seqs", type_=postgresql.ARRAY(BigInteger)))
        if postgres
        else table.c.seq.in_(bindparam("seqs", expanding=True))
    )
    candidates = select(table.c.seq).where(
        seqs,
        table.c.published_at.is_(None),
        table.c.claimed_until.is_(None) | (table.c.claimed_until < bindparam("now")),
    )
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True)
    return (
        update(table)
        .where(table.c.seq.in_(candidates.scalar_subquery()))
        .values(
            claimed_by=relay_id,
            claimed_until=bindparam("until"),
            attempts=table.c.attempts + 1,
        )
        .returning(
            table.c.seq,
            table.c.topic,
            table.c.key,
            table.c.payload,
            table.c.created_at,
            table.c.attempts,
        )
    )


async def _settled(deliveries: set[asyncio.Task[Delivery]]) -> None:
    """Wait for the batches in flight; cancelled meanwhile (the grace ran out while
    the broker hung), each hands its rows back instead."""
    if not deliveries:
        return
    try:
        await asyncio.wait(deliveries)
    except asyncio.CancelledError:
        for delivery in deliveries:
            delivery.cancel()
        await asyncio.wait(deliveries)
        raise
    finally:
        _reap(deliveries)


def _reap(deliveries: set[asyncio.Task[Delivery]]) -> bool:
    """Drop the finished deliveries; True when one found the broker away or failed."""
    down = False
    for task in [task for task in deliveries if task.done()]:
        deliveries.discard(task)
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            logger.warning("outbox relay round failed: %r", error)
            down = True
        else:
            down = task.result().broker_down or down
    return down


async def _wait(stopping: asyncio.Event, wakeup: asyncio.Event, timeout: float) -> None:
    waiters = {asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wakeup.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
