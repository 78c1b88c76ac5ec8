"""The unit of work: one transaction around one use case.

Service functions do all their database work inside ``async with uow:`` and
call ``await uow.commit()`` when the change is complete; leaving the block
without committing rolls back. A lost database connection surfaces as
:class:`DatabaseUnavailable` (a 503), whichever statement hit it, and a value
the database refused as :class:`ValueNotStorable` (a 422).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lkern.platform.db_errors import database_problem
from lkern.platform.errors import DomainError
from lkern.platform.events.outbox import PendingEvent, write_outbox

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from lkern.events import EventData
    from lkern.platform.metrics import ServiceMetrics
    from lkern.platform.reads import AnySelect, Reader, Row


class UnitOfWork:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        reader: Reader,
        service: str | None = None,
        on_events_committed: Callable[[], None] | None = None,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._reader = reader
        self._reading = False
        self._inside = False
        self._session: AsyncSession | None = None
        self._service = service
        self._on_events_committed = on_events_committed
        self._events: list[PendingEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        #: The service's metrics, for a use case to count what it committed
        #: (None where no service runs, as in unit tests).
        self.metrics = metrics

    def emit(self, data: EventData, subject: uuid.UUID | str) -> None:
        """Queue an event; it is written to the outbox by :meth:`commit`, with the change."""
        if self._service is None:
            raise RuntimeError("this unit of work belongs to no service and cannot emit events")
        self._events.append(PendingEvent(data, str(subject)))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this transaction has committed; never if it rolls back
        (what a use case counts in its metrics, so only changes that happened count)."""
        self._after_commit.append(callback)

    @property
    def session(self) -> AsyncSession:
        if not self._inside:
            raise RuntimeError("the unit of work is used outside 'async with'")
        if self._session is None:
            # Read-only use cases open a session only if they use it.
            self._session = self._read_sessions()
        return self._session

    def read_only(self) -> Self:
        """``async with uow.read_only():`` for a use case that only reads.

        Each statement runs on its own, outside a transaction where the
        database allows (see ``read_session_factory``), so the use case must
        not write, and cannot commit. :meth:`fetch_one` and :meth:`fetch_all`
        run a statement below the ORM (:mod:`lkern.platform.reads`); ``session``
        is there for what needs the ORM.
        """
        self._reading = True
        return self

    async def fetch_one(self, stmt: AnySelect, **params: Any) -> Row | None:
        """The one row ``stmt`` selects, or None; only in a read-only unit of work."""
        return await self._reader.one_or_none(stmt, self._readable(params))

    async def fetch_all(self, stmt: AnySelect, **params: Any) -> Sequence[Row]:
        return await self._reader.all(stmt, self._readable(params))

    def _readable(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        # Outside the transaction a read-write use case works in, a read
        # would not see that transaction's own changes.
        if not (self._inside and self._reading):
            raise RuntimeError("fetch_one and fetch_all belong in 'async with uow.read_only()'")
        return params

    async def __aenter__(self) -> Self:
        self._inside = True
        if not self._reading:
            self._session = self._sessions()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        self._events.clear()
        self._after_commit.clear()
        self._reading = self._inside = False
        try:
            # close() rolls back what was not committed and detaches the
            # loaded objects without expiring them, so callers can still
            # read what the use case returned.
            if session is not None:
                await session.close()
        except Exception:
            if exc is None:
                raise
        if exc is not None and not isinstance(exc, DomainError):
            problem = database_problem(exc)
            if problem is not None:
                raise problem from exc

    async def commit(self) -> None:
        if self._reading:
            raise RuntimeError("a read-only unit of work cannot commit")
        events, self._events = self._events, []
        if events:
            assert self._service is not None
            # The change first: its row locks order concurrent changes to one
            # aggregate, so the outbox rows written after them get their
            # sequence numbers in commit order.
            await self.session.flush()
            await write_outbox(self.session, self._service, events)
        await self.session.commit()
        if events and self._on_events_committed is not None:
            self._on_events_committed()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()
