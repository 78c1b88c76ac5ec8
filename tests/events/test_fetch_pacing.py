"""An idle consumer asks tansu for events 5 times a second, a busy one 50 times."""

from __future__ import annotations

import asyncio
import time

from lkern.platform.events.broker import OutgoingMessage
from lkern.platform.events.kafka import IDLE_AFTER_SECONDS, KafkaBroker, KafkaOptions
from tests.support.tansu import TansuBroker

TOPIC = "pacing.events"


async def test_the_fetch_wait_grows_while_nothing_comes_and_drops_at_the_first_event(
    tansu: TansuBroker,
):
    broker = KafkaBroker(
        tansu.url,
        KafkaOptions(
            session_timeout_ms=1000,
            heartbeat_interval_ms=300,
            rebalance_timeout_ms=1000,
            request_timeout_ms=3000,
            fetch_max_wait_ms=20,
            fetch_idle_wait_ms=200,
        ),
    )
    try:
        await broker.ensure_topics([TOPIC])
        async with broker.subscribe("pacing", [TOPIC]) as subscription:
            # Joined, but nothing to read yet: the short wait, then the long one.
            assert await subscription.fetch(0.1) == []
            assert subscription.fetch_wait_ms == 20  # type: ignore[attr-defined]
            began = time.monotonic()
            while time.monotonic() - began < IDLE_AFTER_SECONDS + 0.5:
                assert await subscription.fetch(0.2) == []
            assert subscription.fetch_wait_ms == 200  # type: ignore[attr-defined]
            # The first fetch with an event brings back the short wait.
            [error] = await broker.publish([OutgoingMessage(TOPIC, "k", b"{}", {})])
            assert error is None
            received = []
            for _ in range(50):
                received = await subscription.fetch(0.2)
                if received:
                    break
                await asyncio.sleep(0)
            assert [message.key for message in received] == ["k"]
            assert subscription.fetch_wait_ms == 20  # type: ignore[attr-defined]
    finally:
        await broker.stop()
