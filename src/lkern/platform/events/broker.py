"""The broker port: what the relay and the consumers need of a message broker.

Two adapters implement it: :mod:`memory` (one process, ``memory://``) and
:mod:`kafka` (``kafka://host:port[,host:port]``); which one a service gets is
decided by the composition root (``platform/bootstrap.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached or did not acknowledge in time."""


class MessageRejected(RuntimeError):
    """The broker answered and refused this one message; the others may well pass."""


class UnknownTopic(MessageRejected):
    """The topic does not exist and the broker does not create topics on demand."""


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
    #: Why the message cannot be read whatever its value says (a key that is not UTF-8).
    defect: str | None = None


def received(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    partition: int,
    offset: int,
) -> IncomingMessage:
    """A message as a broker delivered it, raw bytes and all, made safe to pass on.

    Nothing here raises: what cannot be decoded is marked as the message's
    ``defect``, so the consumer parks it instead of failing on it.
    """
    defect = None
    text_key = None
    if key is not None:
        try:
            text_key = key.decode()
        except UnicodeDecodeError:
            text_key = key.decode(errors="replace")
            defect = "the message key is not UTF-8"
    return IncomingMessage(
        topic=topic,
        key=text_key,
        value=value or b"",
        headers={name: raw.decode(errors="replace") for name, raw in headers if raw is not None},
        partition=partition,
        offset=offset,
        defect=defect,
    )


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
    #: ``messaging.system`` of the spans publishing to and consuming from it.
    messaging_system: str = "kafka"

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None:
        """Flush what was sent and close connections."""

    @abstractmethod
    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Send all; one result per message: None when the broker acknowledged it,
        :class:`MessageRejected` when it refused that message, :class:`BrokerUnavailable`
        when it could not be asked or did not acknowledge. A message refused or never
        queued was not published, so sending it again does not publish it twice."""

    @abstractmethod
    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics that do not exist; raise BrokerUnavailable if that fails."""

    @abstractmethod
    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker answers."""
