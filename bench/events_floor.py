"""W4's floor: what tansu itself allows, with plain aiokafka and no L-KERN.

``python -m bench.events_floor --rates 500,1000,2000,3000``. It starts a tansu
of its own (memory storage, as the bench's), creates topics of 4 partitions
and, at each rate, produces CloudEvent-sized messages paced like the relay
(a batch queued every few milliseconds, acknowledgements awaited per batch,
``acks=all``, ``linger_ms=1``), while a consumer in a group reads them with
``getmany``. A message carries its send time, so the figures are send to
acknowledged (the produce) and send to received (end to end) on one clock.

``--topics`` subscribes the consumer to that many topics of which only the
first is written, as orders' consumer reads six contacts and identity topics;
``--fetch-max-wait-ms`` and ``--max-records`` are the consumer's settings.
What this reaches at a rate is the most W4 could, since L-KERN adds a
database transaction at each end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.stats import percentile
from tests.support.tansu import TansuBroker

PARTITIONS = 4
#: About a ``lkern.contacts.created`` CloudEvent's size.
PAYLOAD = "x" * 520
#: How often the paced producer queues what came due, like a relay round.
ROUND_SECONDS = 0.002


@dataclass(frozen=True, slots=True)
class FloorResult:
    rate: int
    achieved: float
    received: int
    produce_p50_ms: float
    produce_p99_ms: float
    p50_ms: float
    p99_ms: float


async def _create(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1) for topic in topics])
    finally:
        await admin.close()


async def _produce(
    producer: AIOKafkaProducer, topic: str, rate: int, seconds: float, acks: list[float]
) -> tuple[int, float]:
    """Queue what is due every round, then await the round's acknowledgements."""
    began = time.perf_counter()
    sent = 0
    while (now := time.perf_counter()) - began < seconds:
        due = int((now - began) * rate) - sent
        futures = []
        stamps = []
        for _ in range(due):
            stamp = time.time()
            value = json.dumps({"sent": stamp, "data": PAYLOAD}).encode()
            key = f"k{sent}".encode()
            futures.append(await producer.send(topic, value=value, key=key))
            stamps.append(stamp)
            sent += 1
        if futures:
            await asyncio.gather(*futures)
            done = time.time()
            acks.extend((done - stamp) * 1000 for stamp in stamps)
        await asyncio.sleep(ROUND_SECONDS)
    return sent, time.perf_counter() - began


async def _consume(
    consumer: AIOKafkaConsumer, latencies: list[float], expected: list[int], max_records: int
) -> None:
    """Read until as many as ``expected`` says (once the producer set it) have come."""
    while not expected or len(latencies) < expected[0]:
        batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
        now = time.time()
        for records in batches.values():
            for record in records:
                assert record.value is not None
                latencies.append((now - json.loads(record.value)["sent"]) * 1000)


async def measure(
    bootstrap: str, rates: list[int], seconds: float, topics: int, wait_ms: int, max_records: int
) -> list[FloorResult]:
    names = [f"floor.events.{index}" for index in range(topics)]
    await _create(bootstrap, names)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        group_id="floor",
        enable_auto_commit=True,
        auto_offset_reset="latest",
        session_timeout_ms=1000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=1000,
        fetch_max_wait_ms=wait_ms,
    )
    await producer.start()
    await consumer.start()
    results = []
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for rate in rates:
            latencies: list[float] = []
            acks: list[float] = []
            expected: list[int] = []
            reading = asyncio.create_task(_consume(consumer, latencies, expected, max_records))
            warm, _ = await _produce(producer, names[0], rate, 2.0, [])  # not counted
            counted = len(latencies)
            sent, elapsed = await _produce(producer, names[0], rate, seconds, acks)
            expected.append(warm + sent)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reading, 10)
            # The warm-up's messages received before the measured ones were sent.
            del latencies[:counted]
            got = sorted(latencies)
            ordered_acks = sorted(acks)
            results.append(
                FloorResult(
                    rate=rate,
                    achieved=sent / elapsed,
                    received=len(got),
                    produce_p50_ms=percentile(ordered_acks, 0.5),
                    produce_p99_ms=percentile(ordered_acks, 0.99),
                    p50_ms=percentile(got, 0.5),
                    p99_ms=percentile(got, 0.99),
                )
            )
    finally:
        await consumer.stop()
        await producer.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--topics", type=int, default=6, help="subscribed; only one written")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=20)
    parser.add_argument("--max-records", type=int, default=500)
    parser.add_argument("--bootstrap", help="an already running broker instead of a new tansu")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = TansuBroker(Path(tempfile.mkdtemp(prefix="w4-floor-")) / "tansu.log")
        broker.start()
        bootstrap = broker.bootstrap
    try:
        results = asyncio.run(
            measure(
                bootstrap,
                rates,
                args.seconds,
                args.topics,
                args.fetch_max_wait_ms,
                args.max_records,
            )
        )
    finally:
        if broker is not None:
            broker.stop()
    print("rate achieved received  produce p50  produce p99   e2e p50   e2e p99 (ms)")
    for r in results:
        print(
            f"{r.rate:4d} {r.achieved:8.0f} {r.received:8d} {r.produce_p50_ms:12.1f} "
            f"{r.produce_p99_ms:12.1f} {r.p50_ms:9.1f} {r.p99_ms:9.1f}"
        )


if __name__ == "__main__":
    main()
