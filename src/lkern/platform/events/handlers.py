"""What a service consumes: its handlers, by event type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lkern.events import EventData
from lkern.platform.events.envelope import CloudEvent
from lkern.platform.uow import UnitOfWork

D = TypeVar("D", bound=EventData)


@dataclass(frozen=True, slots=True)
class ReceivedEvent(Generic[D]):
    envelope: CloudEvent
    data: D

    @property
    def id(self) -> str:
        return self.envelope.id


Handler = Callable[[UnitOfWork, ReceivedEvent[Any]], Awaitable[None]]


class EventHandlers:
    """The handlers of one service, by event type.

    A handler writes with ``uow.execute``, ``uow.execute_many`` and
    ``uow.row(s)``: its transaction runs below the ORM (inbox.py). One that
    needs ORM objects registers with ``session=True`` and gets ``uow.session``;
    a batch with such a handler in it is applied in a session, at about twice
    the CPU.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._with_session: set[str] = set()

    def on(
        self, *event_classes: type[EventData], session: bool = False
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for cls in event_classes:
                self._handlers.setdefault(cls.event_type, []).append(handler)
                if session:
                    self._with_session.add(cls.event_type)
            return handler

        return register

    @classmethod
    def joined(cls, *many: EventHandlers | None) -> EventHandlers | None:
        """The handlers of all of ``many`` (None where there are none), in their order."""
        joined = cls()
        for handlers in many:
            if handlers is not None:
                for event_type, registered in handlers._handlers.items():
                    joined._handlers.setdefault(event_type, []).extend(registered)
                joined._with_session |= handlers._with_session
        return joined or None

    @property
    def topics(self) -> list[str]:
        return sorted(self._handlers)

    def for_type(self, event_type: str) -> list[Handler]:
        return self._handlers.get(event_type, [])

    def need_session(self, event_types: Iterable[str]) -> bool:
        """Whether a handler of any of ``event_types`` registered with ``session=True``."""
        return not self._with_session.isdisjoint(event_types)

    def __bool__(self) -> bool:
        return bool(self._handlers)
