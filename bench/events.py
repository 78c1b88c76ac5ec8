"""W4: events from commit to handled, at a paced rate.

The bench commits ``lkern.contacts.created`` events through contacts' own
unit of work (outbox row and NOTIFY in the transaction, exactly as a request
would) at a fixed rate; contacts' relay publishes them to tansu and orders'
consumer applies them to its contacts read model. Committing with plain
SQL rather than through POST keeps W2's HTTP cost, and the emitter's own,
out of the event pipeline's figures.

Latency is the outbox row's timestamp (taken in the committing transaction)
to the inbox row's (taken in the consumer's transaction), both on this
machine's clock. The backlog is the count of unpublished outbox rows,
sampled while the load runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

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
    achieved_rate: float
    handled: int
    emitted: int
    p50_ms: float
    p99_ms: float
    publish_p50_ms: float  # commit to published: the relay's share of the latency
    publish_p99_ms: float
    max_backlog: int
    final_backlog: int

    @property
    def sustained(self) -> bool:
        """Publishing kept up: the backlog ended near empty and the rate was reached."""
        return self.achieved_rate >= 0.95 * self.target_rate and self.final_backlog <= max(
            50, self.target_rate // 10
        )


async def _commit_one(connection: asyncpg.Connection) -> uuid.UUID:
    """Commit one ``lkern.contacts.created`` into contacts' outbox; returns its event id."""
    contact_id = uuid.uuid4()
    data = contact_created(contact_id, "Event Bench")
    (row,) = outbox_rows("contacts", [PendingEvent(data, str(contact_id))])
    # One statement, committed on its own: the row and its NOTIFY.
    await connection.execute(INSERT_OUTBOX, row.event_id, row.topic, row.key, row.payload, utcnow())
    return row.event_id


async def _emit(url: str, rate: int, seconds: float) -> tuple[int, float, datetime]:
    pool = await asyncpg.create_pool(url, min_size=EMITTERS, max_size=EMITTERS)
    started_at = utcnow()
    interval = EMITTERS / rate
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
                await _commit_one(connection)
                emitted += 1
                due += interval

    began = time.perf_counter()
    await asyncio.gather(*(emitter(i * interval / EMITTERS) for i in range(EMITTERS)))
    elapsed = time.perf_counter() - began
    await pool.close()
    return emitted, elapsed, started_at


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
) -> EventsResult:
    """Emit at ``rate`` for ``warmup + seconds``, wait for the consumer, then measure.

    Latency counts only events committed after the warm-up: the figure asked
    for is the steady state at that rate, not how fast the pipeline gets there.
    """
    contacts = await asyncpg.connect(contacts_url)
    orders = await asyncpg.connect(orders_url)
    try:
        samples: list[int] = []
        emitting = asyncio.create_task(_emit(contacts_url, rate, warmup + seconds))
        while not emitting.done():
            samples.append(await _backlog(contacts))
            await asyncio.sleep(0.5)
        emitted, elapsed, began_at = await emitting
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
        achieved_rate=emitted / elapsed if elapsed else 0.0,  # warm-up included
        handled=len(handled),
        emitted=len(committed),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        publish_p50_ms=percentile(publishing, 0.50),
        publish_p99_ms=percentile(publishing, 0.99),
        max_backlog=max(samples, default=0),
        final_backlog=final_backlog,
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
