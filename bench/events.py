"""W4: events from commit to handled, at a paced rate.

The bench commits ``lkern.contacts.created`` events through contacts' own
unit of work (outbox row and NOTIFY in the transaction, exactly as a request
would) at a fixed rate; contacts' relay publishes them to tansu and orders'
consumer applies them to its contacts read model. Committing with plain
SQL rather than through POST keeps W2's HTTP cost, and the emitter's own,
out of the event pipeline's figures.

Each commit carries one event, as a request's does, or ``per_commit`` of them
(as an import's): PostgreSQL's commits with NOTIFY have a ceiling of their own
(:func:`commit_ceiling`), and the batched steps show what the relay and the
consumer sustain above it.

Latency is the outbox row's timestamp (taken in the committing transaction)
to the inbox row's (taken in the consumer's transaction), both on this
machine's clock. The backlog is the count of unpublished outbox rows,
sampled while the load runs.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from bench.cpu import machine_cpu_seconds
from bench.floor.app import INSERT_OUTBOX
from bench.stats import percentile
from lkern.events.contacts import ContactCreated
from lkern.platform.db import utcnow
from lkern.platform.events.outbox import PendingEvent, outbox_rows
from tests.events.helpers import contact_created

EMITTERS = 16
WARMUP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class EventsResult:
    target_rate: int
    per_commit: int
    achieved_rate: float
    handled: int
    emitted: int
    p50_ms: float
    p99_ms: float
    publish_p50_ms: float  # commit to published: the relay's share of the latency
    publish_p99_ms: float
    max_backlog: int
    final_backlog: int
    #: Share of all the machine's cores busy while the events were emitted (the
    #: emitter, PostgreSQL, the relay, tansu and the consumer share them).
    machine_busy: float

    @property
    def sustained(self) -> bool:
        """Publishing kept up: the backlog ended near empty and the rate was reached."""
        return self.achieved_rate >= 0.95 * self.target_rate and self.final_backlog <= max(
            50, self.target_rate // 10
        )


def _outbox_row() -> tuple[Any, ...]:
    contact_id = uuid.uuid4()
    data = contact_created(contact_id, "Event Bench")
    (row,) = outbox_rows("contacts", [PendingEvent(data, str(contact_id))])
    return (row.event_id, row.topic, row.key, row.payload, utcnow())


async def _commit_one(connection: asyncpg.Connection) -> uuid.UUID:
    """Commit one ``lkern.contacts.created`` into contacts' outbox; returns its event id."""
    row = _outbox_row()
    # One statement, committed on its own: the row and its NOTIFY.
    await connection.execute(INSERT_OUTBOX, *row)
    return uuid.UUID(str(row[0]))


async def _commit(connection: asyncpg.Connection, count: int) -> None:
    if count == 1:
        await _commit_one(connection)
        return
    async with connection.transaction():
        await connection.executemany(INSERT_OUTBOX, [_outbox_row() for _ in range(count)])


async def _emit(
    url: str, rate: int, seconds: float, per_commit: int
) -> tuple[int, float, datetime]:
    pool = await asyncpg.create_pool(url, min_size=EMITTERS, max_size=EMITTERS)
    started_at = utcnow()
    interval = EMITTERS * per_commit / rate
    emitted = 0

    async def emitter(offset: float) -> None:
        nonlocal emitted
        due = time.perf_counter() + offset
        stop = time.perf_counter() + seconds
        async with pool.acquire() as connection:
            while due < stop:
                pause = due - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                await _commit(connection, per_commit)
                emitted += per_commit
                due += interval

    began = time.perf_counter()
    await asyncio.gather(*(emitter(i * interval / EMITTERS) for i in range(EMITTERS)))
    elapsed = time.perf_counter() - began
    await pool.close()
    return emitted, elapsed, started_at


@dataclass(frozen=True, slots=True)
class CommitCeiling:
    """Commits per second of one small row each, as fast as EMITTERS connections go."""

    with_notify: float
    without_notify: float


async def commit_ceiling(url: str, seconds: float = 3.0) -> CommitCeiling:
    """What PostgreSQL commits here with and without a NOTIFY, into a scratch table
    (on a channel no relay hears): the ceiling of one event per commit."""
    admin = await asyncpg.connect(url)
    await admin.execute("CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY)")
    pool = await asyncpg.create_pool(url, min_size=EMITTERS, max_size=EMITTERS)

    async def rate(sql: str) -> float:
        commits = 0
        stop = time.perf_counter() + seconds

        async def committer() -> None:
            nonlocal commits
            async with pool.acquire() as connection:
                while time.perf_counter() < stop:
                    await connection.execute(sql)
                    commits += 1

        began = time.perf_counter()
        await asyncio.gather(*(committer() for _ in range(EMITTERS)))
        return commits / (time.perf_counter() - began)

    try:
        without = await rate("INSERT INTO bench_commits DEFAULT VALUES")
        with_notify = await rate(
            "WITH written AS (INSERT INTO bench_commits DEFAULT VALUES RETURNING id) "
            "SELECT pg_notify('bench_ceiling', '') FROM written"
        )
    finally:
        await pool.close()
        await admin.execute("DROP TABLE IF EXISTS bench_commits")
        await admin.close()
    return CommitCeiling(with_notify=with_notify, without_notify=without)


async def _backlog(contacts: asyncpg.Connection) -> int:
    return int(await contacts.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def run_events(
    contacts_url: str,
    orders_url: str,
    rate: int,
    seconds: float,
    *,
    warmup: float = WARMUP_SECONDS,
    settle: float = 15.0,
    per_commit: int = 1,
) -> EventsResult:
    """Emit at ``rate`` for ``warmup + seconds``, wait for the consumer, then measure.

    Latency counts only events committed after the warm-up: the figure asked
    for is the steady state at that rate, not how fast the pipeline gets there.
    """
    contacts = await asyncpg.connect(contacts_url)
    orders = await asyncpg.connect(orders_url)
    try:
        samples: list[int] = []
        cpu_before, clock_before = machine_cpu_seconds(), time.perf_counter()
        emitting = asyncio.create_task(_emit(contacts_url, rate, warmup + seconds, per_commit))
        while not emitting.done():
            samples.append(await _backlog(contacts))
            await asyncio.sleep(0.5)
        emitted, elapsed, began_at = await emitting
        busy = (machine_cpu_seconds() - cpu_before) / (
            (os.cpu_count() or 1) * (time.perf_counter() - clock_before)
        )
        started_at = began_at + timedelta(seconds=warmup)
        final_backlog = await _backlog(contacts)
        rows = await contacts.fetch(
            "SELECT event_id, created_at, published_at FROM outbox "
            "WHERE created_at >= $1 AND topic = $2",
            started_at,
            ContactCreated.event_type,
        )
        committed = {row["event_id"]: row["created_at"] for row in rows}
        publishing = sorted(
            (row["published_at"] - row["created_at"]).total_seconds() * 1000
            for row in rows
            if row["published_at"] is not None
        )
        deadline = time.monotonic() + settle
        handled: dict[uuid.UUID, datetime] = {}
        while time.monotonic() < deadline:
            inbox = await orders.fetch(
                "SELECT event_id, processed_at FROM processed_events WHERE processed_at >= $1",
                started_at,
            )
            handled = {
                row["event_id"]: row["processed_at"]
                for row in inbox
                if row["event_id"] in committed
            }
            if len(handled) >= len(committed):
                break
            await asyncio.sleep(0.5)
    finally:
        await contacts.close()
        await orders.close()
    latencies = sorted(
        (handled[event_id] - committed[event_id]).total_seconds() * 1000 for event_id in handled
    )

    return EventsResult(
        target_rate=rate,
        per_commit=per_commit,
        achieved_rate=emitted / elapsed if elapsed else 0.0,  # warm-up included
        handled=len(handled),
        emitted=len(committed),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        publish_p50_ms=percentile(publishing, 0.50),
        publish_p99_ms=percentile(publishing, 0.99),
        max_backlog=max(samples, default=0),
        final_backlog=final_backlog,
        machine_busy=busy,
    )


async def wait_drained(contacts_url: str, orders_url: str, timeout: float = 600) -> float:
    """Wait until orders has handled every event contacts committed, and then one
    more, committed now; returns the seconds waited.

    Earlier workloads (W2) leave events behind; W4 must start on an idle pipeline.
    And on a pipeline that runs: orders' consumer joins its group on tansu seconds
    after the service is up (5 s and more with the default timings), and a rate
    started before that ran its warm-up, and more, into a backlog the consumer
    then had to catch up on; the last event, handled, shows it is in.
    """
    contacts = await asyncpg.connect(contacts_url)
    orders = await asyncpg.connect(orders_url)
    began = time.monotonic()
    last: uuid.UUID | None = None
    try:
        while time.monotonic() - began < timeout:
            if last is not None:
                if await orders.fetchval(
                    "SELECT 1 FROM processed_events WHERE event_id = $1", last
                ):
                    break
            else:
                committed = await contacts.fetchval("SELECT count(*) FROM outbox")
                handled = await orders.fetchval(
                    "SELECT count(*) FROM processed_events WHERE topic LIKE 'lkern.contacts.%'"
                )
                if handled >= committed:
                    last = await _commit_one(contacts)
            await asyncio.sleep(0.2)
    finally:
        await contacts.close()
        await orders.close()
    return time.monotonic() - began
