"""The broker port: what the relay and the consumers need of a message broker.

Two adapters implement it: :mod:`memory` (one process, ``memory://``) and
:mod:`kafka` (``kafka://host:port[,host:port]``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached or did not acknowledge in time."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int


class Subscription(ABC):
    """One consumer group's reading of some topics; offsets are committed explicitly."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def fetch(self, timeout: float) -> list[IncomingMessage]:
        """The next messages, in order per partition; empty after ``timeout`` seconds."""

    @abstractmethod
    async def commit(self, messages: Sequence[IncomingMessage]) -> None:
        """Mark each message and everything before it in its partition as done."""


class Broker(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None:
        """Flush what was sent and close connections."""

    @abstractmethod
    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Send all; one result per message, None when the broker acknowledged it."""

    @abstractmethod
    async def ensure_topics(self, topics: Sequence[str]) -> None: ...

    @abstractmethod
    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker answers."""


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    idempotence: bool = True
    request_timeout_ms: int = 5_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 10_000
    partitions: int = 4
    replication_factor: int = 1
    fetch_max_wait_ms: int = 50


def connect_broker(url: str, kafka: KafkaOptions | None = None) -> Broker:
    """The adapter the URL names."""
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        from lkern.platform.events.memory import memory_broker

        return memory_broker(url)
    if scheme == "kafka":
        from lkern.platform.events.kafka import KafkaBroker

        return KafkaBroker(url, kafka or KafkaOptions())
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or kafka://host:port")
