"""The in-process broker of ``lkern run``: topics are lists, groups are offsets.

Every service in the process that names the same ``memory://NAME`` URL shares
one broker, as services share one Kafka cluster. It keeps nothing across a
restart; that is what the outbox is for.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

from lkern.platform.events.broker import (
    Broker,
    BrokerUnavailable,
    IncomingMessage,
    MessageRejected,
    OutgoingMessage,
    Subscription,
    UnknownTopic,
    received,
)

#: Kafka's default limit on one message (``message.max.bytes``).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

_BROKERS: dict[str, MemoryBroker] = {}


def memory_broker(url: str) -> MemoryBroker:
    name = url.split("://", 1)[1] or "default"
    if name not in _BROKERS:
        _BROKERS[name] = MemoryBroker()
    return _BROKERS[name]


class MemoryBroker(Broker):
    messaging_system = "lkern_memory"

    def __init__(self) -> None:
        self.topics: dict[str, list[IncomingMessage]] = defaultdict(list)
        self._offsets: dict[tuple[str, str], int] = defaultdict(int)
        self._subscriptions: set[_MemorySubscription] = set()
        #: Tests switch this off to stand for an outage.
        self.available = True
        #: Off, a message for a topic nobody created is refused, as Kafka with
        #: ``auto.create.topics.enable=false`` refuses it.
        self.auto_create_topics = True
        #: Bigger messages are refused, as Kafka refuses them.
        self.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        if not self.available:
            error = BrokerUnavailable("memory broker switched off")
            return [error for _ in messages]
        results: list[BaseException | None] = []
        for message in messages:
            refusal = self._refusal(message)
            if refusal is None:
                self.produce_raw(
                    message.topic,
                    message.key.encode(),
                    message.value,
                    [(name, value.encode()) for name, value in message.headers.items()],
                )
            results.append(refusal)
        return results

    def _refusal(self, message: OutgoingMessage) -> MessageRejected | None:
        if not self.auto_create_topics and message.topic not in self.topics:
            return UnknownTopic(f"memory broker has no topic {message.topic}")
        size = len(message.key.encode()) + len(message.value)
        if size > self.max_message_bytes:
            return MessageRejected(
                f"message of {size} bytes is larger than max_message_bytes={self.max_message_bytes}"
            )
        return None

    def produce_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """Append bytes as a plain Kafka client would send them, with no envelope or check."""
        log = self.topics[topic]
        log.append(received(topic, key, value, headers, partition=0, offset=len(log)))
        for subscription in list(self._subscriptions):
            subscription.wake()

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        if not self.available:
            raise BrokerUnavailable("memory broker switched off")
        for topic in topics:
            self.topics.setdefault(topic, [])

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        return _MemorySubscription(self, group, list(topics))

    async def ping(self) -> None:
        if not self.available:
            raise BrokerUnavailable("memory broker switched off")

    def committed(self, group: str, topic: str) -> int:
        return self._offsets[(group, topic)]

    def _commit(self, group: str, topic: str, offset: int) -> None:
        key = (group, topic)
        self._offsets[key] = max(self._offsets[key], offset)


class _MemorySubscription(Subscription):
    def __init__(self, broker: MemoryBroker, group: str, topics: list[str]) -> None:
        self._broker = broker
        self._group = group
        self._topics = topics
        self._positions: dict[str, int] = {}
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        self._positions = {
            topic: self._broker.committed(self._group, topic) for topic in self._topics
        }
        self._broker._subscriptions.add(self)

    async def stop(self) -> None:
        self._broker._subscriptions.discard(self)

    async def fetch(self, timeout: float) -> list[IncomingMessage]:
        messages = self._take()
        if messages:
            return messages
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            return []
        return self._take()

    def _take(self) -> list[IncomingMessage]:
        taken: list[IncomingMessage] = []
        for topic in self._topics:
            log = self._broker.topics.get(topic, [])
            position = self._positions[topic]
            taken.extend(log[position:])
            self._positions[topic] = len(log)
        return taken

    async def commit(self, messages: Sequence[IncomingMessage]) -> None:
        for message in messages:
            self._broker._commit(self._group, message.topic, message.offset + 1)
