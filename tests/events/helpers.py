"""Reading back what reached a broker, the same way on every broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from lkern.events.contacts import ContactCreated
from lkern.platform.db import utcnow
from lkern.platform.events.broker import Broker, IncomingMessage
from lkern.platform.events.envelope import CONTENT_TYPE
from lkern.platform.events.kafka import KafkaBroker
from lkern.platform.events.memory import MemoryBroker


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


async def produce_raw(broker: Broker, topic: str, key: bytes | None, value: bytes | None) -> None:
    """Send bytes as any Kafka client could: no envelope, no check, no encoding by us."""
    headers = [("content-type", CONTENT_TYPE.encode())]
    if isinstance(broker, MemoryBroker):
        broker.produce_raw(topic, key, value, headers)
        return
    assert isinstance(broker, KafkaBroker)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def contact_created(contact_id: uuid.UUID, name: str = "X") -> ContactCreated:
    """The data of a contact's creation, for emitting or producing by hand."""
    return ContactCreated(
        id=contact_id,
        name=name,
        email="x@example.com",
        phone=None,
        company=None,
        is_active=True,
        version=1,
        updated_at=utcnow(),
        deleted_at=None,
    )
