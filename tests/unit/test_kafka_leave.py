"""A stopping subscription does not wait out a rebalance to leave its group."""

from __future__ import annotations

import asyncio
import time

import pytest

from lkern.platform.events import kafka
from lkern.platform.events.broker import Subscription
from lkern.platform.events.kafka import KafkaBroker


class Consumer:
    """Stands for aiokafka's consumer: its stop ends when ``left`` is set."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.stopped = False

    async def stop(self) -> None:
        await self.left.wait()
        self.stopped = True


def subscribed(consumer: Consumer) -> Subscription:
    subscription = KafkaBroker("kafka://127.0.0.1:9").subscribe("contacts", ["topic"])
    subscription._consumer = consumer  # type: ignore[attr-defined]
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
    assert consumer.stopped and not kafka._LEAVING
