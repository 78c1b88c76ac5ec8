"""The unit of work: one transaction around one use case.

Service functions do all their database work inside ``async with uow:`` and
call ``await uow.commit()`` when the change is complete; leaving the block
without committing rolls back. A lost database connection surfaces as
:class:`DatabaseUnavailable` (a 503), whichever statement hit it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lkern.platform.errors import DatabaseUnavailable


def is_connectivity_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached, rather than a bad statement."""
    if isinstance(exc, PoolTimeout | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, InterfaceError):
            return True
        if isinstance(exc.orig, OSError | ConnectionError | TimeoutError):
            return True
        # SQLite's "unable to open database file" and similar; a locked database
        # is not an outage but a busy one, also worth a retry.
        return isinstance(exc, OperationalError) and "syntax" not in str(exc.orig).lower()
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError)


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is used outside 'async with'")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        try:
            # close() rolls back what was not committed and detaches the
            # loaded objects without expiring them, so callers can still
            # read what the use case returned.
            await session.close()
        except Exception:
            if exc is None:
                raise
        if exc is not None and is_connectivity_error(exc):
            raise DatabaseUnavailable() from exc

    async def commit(self) -> None:
        await self.session.commit()
