"""Reading back what reached a broker, the same way on every broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from lkern.platform.events.broker import Broker, IncomingMessage


@dataclass(frozen=True)
class Seen:
    message: IncomingMessage

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.message.value))


async def collect(
    broker: Broker, topics: list[str], expected: int, timeout: float = 20
) -> list[Seen]:
    """Read ``topics`` from the start in a fresh group until ``expected`` messages arrived."""
    seen: list[Seen] = []
    await broker.ensure_topics(topics)
    async with broker.subscribe(f"probe-{uuid.uuid4().hex[:8]}", topics) as subscription:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(seen) < expected and loop.time() < deadline:
            seen.extend(Seen(message) for message in await subscription.fetch(0.5))
    return seen


async def eventually(condition: Any, timeout: float = 20, interval: float = 0.05) -> None:
    """Wait until ``await condition()`` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
