"""A stopping consumer does not wait out a rebalance: not to leave its group, not to
finish joining it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaError

from lkern.platform import background
from lkern.platform.events import kafka
from lkern.platform.events.broker import BrokerUnavailable, IncomingMessage, Subscription
from lkern.platform.events.consumer import _joined
from lkern.platform.events.kafka import KafkaBroker


class Consumer:
    """Stands for aiokafka's consumer: its stop ends when ``left`` is set."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.stopped = False

    async def stop(self) -> None:
        await self.left.wait()
        self.stopped = True


def subscribed(consumer: Consumer, *, joined: bool = True) -> Subscription:
    subscription = KafkaBroker("kafka://127.0.0.1:9").subscribe("contacts", ["topic"])
    subscription._consumer = consumer  # type: ignore[attr-defined]
    subscription._joined = joined  # type: ignore[attr-defined]
    return subscription


async def test_a_prompt_leave_is_waited_for():
    consumer = Consumer()
    consumer.left.set()
    await subscribed(consumer).stop()
    assert consumer.stopped


async def test_a_leave_held_up_by_a_rebalance_goes_on_without_the_subscription(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(kafka, "LEAVE_WAIT_SECONDS", 0.05)
    consumer = Consumer()
    began = time.monotonic()
    await subscribed(consumer).stop()
    assert time.monotonic() - began < 1
    assert not consumer.stopped
    assert "still leaving" in caplog.text
    # The leave finishes by itself once the broker lets it.
    consumer.left.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert consumer.stopped and not any(
        task.get_name() == "leave contacts" for task in background.RUNNING
    )


async def test_a_consumer_that_never_joined_is_closed_without_waiting(
    caplog: pytest.LogCaptureFixture,
):
    consumer = Consumer()
    began = time.monotonic()
    await subscribed(consumer, joined=False).stop()
    assert time.monotonic() - began < kafka.LEAVE_WAIT_SECONDS / 2
    assert "still leaving" not in caplog.text
    consumer.left.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert consumer.stopped


class Joining(Subscription):
    """A subscription whose start waits for a rebalance that does not end."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = self.stopped = False

    async def start(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def stop(self) -> None:
        self.stopped = True

    async def fetch(self, timeout: float) -> list[IncomingMessage]:
        raise AssertionError("never joined")

    async def commit(self, messages: Sequence[IncomingMessage]) -> None:
        raise AssertionError("never joined")


async def test_stopping_while_joining_gives_up_the_join():
    subscription, stopping = Joining(), asyncio.Event()
    joined = asyncio.create_task(_joined(subscription, stopping))
    await subscription.started.wait()
    stopping.set()
    assert await asyncio.wait_for(joined, 1) is False
    assert subscription.cancelled and subscription.stopped


class Refusing(Consumer):
    """A consumer whose join fails, and whose close then waits for the broker."""

    def __init__(self, *topics: str, **options: object) -> None:
        super().__init__()

    async def start(self) -> None:
        raise KafkaError("the join failed")


async def test_a_failed_join_does_not_wait_for_its_close(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kafka, "AIOKafkaConsumer", Refusing)
    subscription = KafkaBroker("kafka://127.0.0.1:9").subscribe("contacts", ["topic"])
    before = set(background.RUNNING)
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(subscription.start(), 1)
    [leaving] = background.RUNNING - before
    assert leaving.get_name() == "leave contacts"
    assert not leaving.done()  # closing on its own, held until it ends
    leaving.cancel()
