"""An idle consumer asks tansu for events 5 times a second, a busy one 50 times."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lkern.platform.events.broker import OutgoingMessage, Subscription
from lkern.platform.events.kafka import IDLE_AFTER_SECONDS, KafkaBroker, KafkaOptions
from tests.support.tansu import TansuBroker

TOPIC = "pacing.events"


def count_fetch_requests(subscription: Subscription) -> list[float]:
    """When each fetch request the consumer's client sends leaves, from now on."""
    client = subscription._consumer._client  # type: ignore[attr-defined]
    sent: list[float] = []
    send = client.send

    async def counted(node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("FetchRequest"):
            sent.append(time.monotonic())
        return await send(node_id, request, *args, **kwargs)

    client.send = counted
    return sent


async def fetch_for(subscription: Subscription, seconds: float) -> None:
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        assert await subscription.fetch(0.1) == []


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
            sent = count_fetch_requests(subscription)
            # Joined, nothing to read: the short wait for a second ...
            await fetch_for(subscription, IDLE_AFTER_SECONDS * 0.8)
            busy = len(sent)
            assert subscription.fetch_wait_ms == 20  # type: ignore[attr-defined]
            # ... then the long one: a fetch request every 200 ms or so.
            await fetch_for(subscription, IDLE_AFTER_SECONDS * 0.5)
            assert subscription.fetch_wait_ms == 200  # type: ignore[attr-defined]
            idle_from = len(sent)
            await fetch_for(subscription, 1.0)
            idle = len(sent) - idle_from
            assert idle <= 7, sent
            assert busy >= 2 * idle, (busy, idle)
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
