"""How a consumer works through a fetched batch: per-aggregate order, side by side, safe commits."""

from __future__ import annotations

import asyncio
import itertools

from lkern.platform.events.broker import IncomingMessage
from lkern.platform.events.consumer import EventConsumer
from lkern.platform.events.handlers import EventHandlers


def message(key: str, partition: int, offset: int) -> IncomingMessage:
    return IncomingMessage("lkern.contacts.updated", key, b"{}", {}, partition, offset)


class RecordingConsumer(EventConsumer):
    """Handling is replaced by a short wait that records when each message started and ended."""

    def __init__(self, *, stop_after: int | None = None) -> None:
        super().__init__("test", broker=None, handlers=EventHandlers(), unit_of_work=None)  # type: ignore[arg-type]
        self.log: list[tuple[str, str | None, int]] = []
        self.stopping = asyncio.Event()
        self.stop_after = stop_after

    async def handle(self, message: IncomingMessage) -> None:
        self.log.append(("start", message.key, message.offset))
        await asyncio.sleep(0.02)
        self.log.append(("end", message.key, message.offset))
        ended = sum(1 for entry in self.log if entry[0] == "end")
        if self.stop_after is not None and ended >= self.stop_after:
            self.stopping.set()


BATCH = [
    message("a", 0, 10),
    message("b", 1, 20),
    message("a", 0, 11),
    message("b", 1, 21),
    message("a", 0, 12),
]


async def test_one_aggregate_in_order_different_aggregates_side_by_side():
    consumer = RecordingConsumer()
    committable = await consumer.handle_batch(BATCH, consumer.stopping)

    assert committable == BATCH
    for key in ("a", "b"):
        started = [offset for kind, k, offset in consumer.log if kind == "start" and k == key]
        assert started == sorted(started)
        # Each of one aggregate's events starts only after the one before it ended.
        for earlier, later in itertools.pairwise(started):
            assert consumer.log.index(("end", key, earlier)) < consumer.log.index(
                ("start", key, later)
            )
    # b's first event did not wait for a's.
    assert consumer.log.index(("start", "b", 20)) < consumer.log.index(("end", "a", 10))


async def test_stopping_commits_only_what_was_handled_without_gaps():
    consumer = RecordingConsumer(stop_after=2)
    committable = await consumer.handle_batch(BATCH, consumer.stopping)

    handled = {offset for kind, _, offset in consumer.log if kind == "end"}
    started = {offset for kind, _, offset in consumer.log if kind == "start"}
    # What was in hand when stopping came was finished; nothing new was started.
    assert started == handled and 2 <= len(handled) < len(BATCH)
    # Per partition, the handled messages form an unbroken run from the batch's start.
    for partition in (0, 1):
        offsets = [m.offset for m in BATCH if m.partition == partition]
        done = [m.offset for m in committable if m.partition == partition]
        assert done == offsets[: len(done)]
        assert set(done) == handled & set(offsets)


async def test_concurrency_is_bounded():
    consumer = RecordingConsumer()
    consumer.concurrency = 2
    batch = [message(f"k{n}", n % 4, n) for n in range(12)]
    await consumer.handle_batch(batch, consumer.stopping)

    running = peak = 0
    for kind, _, _ in consumer.log:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_the_inbox_keeps_a_bounded_number_of_built_statements():
    # Batch sizes vary up to the fetch's 500; each size's statement stays compiled
    # while it is cached.
    from lkern.platform.db import STATEMENTS_KEPT
    from lkern.platform.events.inbox import _inbox_insert

    for count in range(1, 200):
        _inbox_insert("postgresql", count)
    assert _inbox_insert.cache_info().currsize <= STATEMENTS_KEPT
