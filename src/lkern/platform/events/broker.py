"""The broker port: what the relay and the consumers need of a message broker.

Two adapters implement it: :mod:`memory` (one process, ``memory://``) and
:mod:`kafka` (``kafka://host:port[,host:port]``); which one a service gets is
decided by the composition root (``platform/bootstrap.py``).
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
