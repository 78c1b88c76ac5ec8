"""The unit of work: one transaction around one use case.

Service functions do all their database work inside ``async with uow:`` and
call ``await uow.commit()`` when the change is complete; leaving the block
without committing rolls back (``uow.direct()`` and ``uow.read_only()`` run
their statements below the ORM: :mod:`lkern.platform.reads`). A lost database
connection surfaces as :class:`DatabaseUnavailable` (a 503), whichever
statement hit it, and a value the database refused as
:class:`ValueNotStorable` (a 422).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lkern.platform.db_errors import database_problem
from lkern.platform.errors import DomainError
from lkern.platform.events.outbox import PendingEvent, outbox_statements, write_outbox
from lkern.platform.reads import CoreStatements

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from lkern.events import EventData
    from lkern.platform.metrics import ServiceMetrics
    from lkern.platform.reads import (
        AnySelect,
        AnyStatement,
        PoolTransaction,
        Reader,
        Row,
        Statements,
    )


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
        self._direct = False
        self._inside = False
        self._session: AsyncSession | None = None
        self._lane: PoolTransaction | CoreStatements | None = None
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
    def dialect(self) -> str:
        """The database's dialect name (``postgresql``, ``sqlite``)."""
        return self._reader.dialect

    @property
    def session(self) -> AsyncSession:
        if not self._inside:
            raise RuntimeError("the unit of work is used outside 'async with'")
        if self._direct:
            raise RuntimeError("a direct unit of work has no ORM session")
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

    def direct(self) -> Self:
        """``async with uow.direct():`` for a change made of Core statements alone, or
        reads that must agree (a list's count and page, ``pagination.RowPages``).

        Its statements (:meth:`row`, :meth:`rows`, :meth:`execute`)
        run in a transaction below the ORM (:meth:`Reader.begin`), which
        :meth:`commit` ends with the events' outbox rows, as a session's; there
        is no ``session``. A change that loads ORM objects uses ``async with uow:``.
        """
        self._direct = True
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

    async def row(self, stmt: AnyStatement, **params: Any) -> Row | None:
        """The one row ``stmt`` answers (a SELECT's, a write's RETURNING), or None, in
        the use case's transaction, below the ORM: a direct one's, or its session's."""
        rows = await self.rows(stmt, **params)
        if len(rows) > 1:
            raise LookupError(f"expected at most one row, got {len(rows)}")
        return rows[0] if rows else None

    async def rows(self, stmt: AnyStatement, **params: Any) -> Sequence[Row]:
        return await (await self._statements()).all(stmt, params)

    async def execute(self, stmt: AnyStatement, **params: Any) -> int:
        """Run a write without RETURNING in the use case's transaction; answers how many
        rows it changed."""
        return await (await self._statements()).execute(stmt, params)

    async def execute_many(self, stmt: AnyStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a write once for each of ``rows`` (one round trip), in the transaction."""
        await (await self._statements()).execute_many(stmt, rows)

    async def _statements(self) -> Statements:
        if not self._inside or self._reading:
            raise RuntimeError("row, rows and execute belong in 'async with uow:' or direct()")
        if self._lane is not None:
            return self._lane
        return CoreStatements(await self.session.connection())

    async def __aenter__(self) -> Self:
        if self._direct:
            try:
                self._lane = await self._reader.begin()
            except Exception as exc:
                self._direct = False
                problem = database_problem(exc)
                if problem is not None:
                    raise problem from exc
                raise
        elif not self._reading:
            self._session = self._sessions()
        self._inside = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        lane, self._lane = self._lane, None
        self._events.clear()
        self._after_commit.clear()
        self._reading = self._direct = self._inside = False
        try:
            # close() rolls back what was not committed and detaches the
            # loaded objects without expiring them, so callers can still
            # read what the use case returned.
            if session is not None:
                await session.close()
            if lane is not None:
                await lane.close()
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
        if self._lane is not None:
            await self._commit_direct(self._lane, events)
        else:
            await self._commit_session(events)
        if events and self._on_events_committed is not None:
            self._on_events_committed()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def _commit_direct(
        self, lane: PoolTransaction | CoreStatements, events: Sequence[PendingEvent]
    ) -> None:
        if events:
            assert self._service is not None
            for stmt, params in outbox_statements(self._service, events, self.dialect):
                await lane.all(stmt, params)
        await lane.commit()

    async def _commit_session(self, events: Sequence[PendingEvent]) -> None:
        if events:
            assert self._service is not None
            # The change first: its row locks order concurrent changes to one
            # aggregate, so the outbox rows written after them get their
            # sequence numbers in commit order.
            await self.session.flush()
            await write_outbox(self.session, self._service, events)
        await self.session.commit()
