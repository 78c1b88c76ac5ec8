"""A consumer's CPU per event: ``python -m bench.consumer_cpu [--batches 1,10,50]``.

Orders' consumer applies ``lkern.contacts.created`` events (its contacts read
model) in batches of each size, on PostgreSQL (a scratch database, dropped
afterwards), through the same ``handle_batch`` a fetch from the broker
reaches: decoding, the inbox, the handler's upsert, the spans, the commit.
No broker is in the way, so the figure is the consumer's own: the process CPU
used per event, and how many events a second one batch after another allows.
A batch of one takes the path a lone event takes (retries, dead letters).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass

from lkern.orders.definition import ORDERS
from lkern.platform.bootstrap import build_runtime
from lkern.platform.events.broker import IncomingMessage
from lkern.platform.events.outbox import PendingEvent, outbox_rows
from lkern.platform.migrations import upgrade
from tests.events.helpers import contact_created
from tests.support.postgres import create_database, drop_database, postgres_server, run_sync

WARMUP_EVENTS = 500


@dataclass(frozen=True, slots=True)
class ConsumerCpu:
    batch: int
    events: int
    cpu_us_per_event: float
    events_per_second: float


def _messages(count: int) -> list[IncomingMessage]:
    messages = []
    for offset in range(count):
        contact_id = uuid.uuid4()
        data = contact_created(contact_id, "Consumer Bench")
        (row,) = outbox_rows("contacts", [PendingEvent(data, str(contact_id))])
        messages.append(
            IncomingMessage(row.topic, row.key, row.payload.encode(), {}, offset % 3, offset)
        )
    return messages


async def measure(database_url: str, batches: list[int], events: int) -> list[ConsumerCpu]:
    os.environ["LKERN_DATABASE_URL"] = database_url
    os.environ["LKERN_BROKER_URL"] = "memory://consumer-cpu"
    settings = ORDERS.load_settings()
    await asyncio.to_thread(upgrade, ORDERS, settings)
    runtime = build_runtime(ORDERS, settings)
    consumer = runtime.consumer
    assert consumer is not None
    stopping = asyncio.Event()
    results = []
    try:
        for batch in batches:
            warm, measured = _messages(WARMUP_EVENTS), _messages(events)
            for start in range(0, len(warm), batch):
                await consumer.handle_batch(warm[start : start + batch], stopping)
            began, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(measured), batch):
                await consumer.handle_batch(measured[start : start + batch], stopping)
            wall, used = time.perf_counter() - began, time.process_time() - cpu
            results.append(ConsumerCpu(batch, events, used / events * 1e6, events / wall))
    finally:
        await runtime.reader.close()
        await runtime.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,10,50", help="events per batch, one run each")
    parser.add_argument("--events", type=int, default=3000, help="events measured per run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    batches = [int(batch) for batch in args.batches.split(",")]
    with postgres_server() as admin_url:
        url = run_sync(create_database(admin_url, prefix="lkern_bench_consumer"))
        try:
            results = asyncio.run(measure(url, batches, args.events))
        finally:
            run_sync(drop_database(admin_url, url))
    print(f"{'batch':>5} {'events':>7} {'CPU us/event':>13} {'events/s':>9}")
    for result in results:
        print(
            f"{result.batch:>5} {result.events:>7} {result.cpu_us_per_event:>13.0f} "
            f"{result.events_per_second:>9.0f}"
        )


if __name__ == "__main__":
    main()
