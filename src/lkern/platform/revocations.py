"""Revoked users (§9): who may no longer use the tokens they were issued before a change.

Identity publishes a deactivation, a role change or a deletion as
``lkern.identity.user_changed``. Every other service consumes it with the
handler here, which every service gets from the platform: it records
``subject -> not_before`` in ``token_revocations``, in the service's own
database. Each replica reloads that table into its in-memory
:class:`~lkern.platform.auth.Revocations` about every second, so replicas
sharing a database learn of a change whichever one consumed it, and the
check on a request stays a dictionary look-up. Identity writes the row in the
transaction of the change itself (:func:`record_revocation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Insert, String, Table, bindparam, select
from sqlalchemy.orm import Mapped, mapped_column

from lkern.events.identity import UserChange, UserChanged
from lkern.platform.auth import Revocations
from lkern.platform.db import (
    PLATFORM_METADATA,
    PlatformBase,
    PlatformTables,
    conflict_insert,
    utcnow,
)
from lkern.platform.errors import ServiceUnavailable
from lkern.platform.events.handlers import EventHandlers, ReceivedEvent
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


class TokenRevocation(PlatformBase):
    """The latest revocation of each user whose tokens may still be alive."""

    metadata = PLATFORM_METADATA[PlatformTables.REVOCATIONS]
    __tablename__ = "token_revocations"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: Tokens of the subject issued before this instant are refused.
    not_before: Mapped[datetime]
    #: By then every token issued before ``not_before`` has expired: the row can be
    #: forgotten, and replicas do not load it.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    #: What the user's change was (a ``UserChange``): it says how the token is refused.
    change: Mapped[str] = mapped_column(String(32))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


def refusal_code(change: str) -> str:
    """A demoted user may refresh for a token of the new role; a user deactivated or
    deleted may not."""
    return "TOKEN_REVOKED" if change == UserChange.ROLE_CHANGED else "USER_NOT_ACTIVE"


@functools.cache
def _revocation_upsert(dialect: str) -> Insert:
    table: Table = TokenRevocation.__table__  # type: ignore[assignment]
    stmt = conflict_insert(table, dialect).values(
        {column: bindparam(column) for column in _RECORDED}
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.subject],
        set_={column: stmt.excluded[column] for column in _RECORDED if column != "subject"},
        where=table.c.not_before < stmt.excluded.not_before,
    )


_RECORDED = ("subject", "not_before", "expires_at", "change", "recorded_at")


async def record_revocation(
    uow: UnitOfWork,
    subject: str,
    change: UserChange,
    not_before: datetime,
    expires_at: datetime,
) -> None:
    """Upsert the revocation, keeping the later one: events may arrive in any order
    and more than once, and the result is the same."""
    await uow.execute(
        _revocation_upsert(uow.dialect),
        subject=subject,
        not_before=not_before,
        expires_at=expires_at,
        change=change.value,
        recorded_at=utcnow(),
    )


async def _on_user_changed(uow: UnitOfWork, event: ReceivedEvent[UserChanged]) -> None:
    data = event.data
    await record_revocation(uow, str(data.id), data.change, data.not_before, data.tokens_expire_by)


def revocation_handlers() -> EventHandlers:
    """The platform's own handlers, which every service that does not publish the
    revocations itself consumes besides its own."""
    handlers = EventHandlers()
    handlers.on(UserChanged)(_on_user_changed)
    return handlers


_LIVE = select(TokenRevocation.subject, TokenRevocation.not_before, TokenRevocation.change)


async def load_revocations(
    unit_of_work: Callable[[], UnitOfWork], revocations: Revocations, *, leeway: float
) -> int:
    """Bring the replica's map up to its database; answers how many are in force."""
    async with unit_of_work().read_only() as uow:
        rows = await uow.fetch_all(
            _LIVE.where(TokenRevocation.expires_at > utcnow() - timedelta(seconds=leeway))
        )
    revocations.merge(
        {
            row["subject"]: (row["not_before"].timestamp(), refusal_code(row["change"]))
            for row in rows
        }
    )
    return len(rows)


class RevocationRefresher:
    """The worker keeping one replica's revocations up to its database."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        revocations: Revocations,
        *,
        poll_seconds: float,
        leeway: float,
    ) -> None:
        self.unit_of_work = unit_of_work
        self.revocations = revocations
        self.poll_seconds = poll_seconds
        self.leeway = leeway
        self._failing = False

    async def refresh(self) -> None:
        try:
            await load_revocations(self.unit_of_work, self.revocations, leeway=self.leeway)
        except ServiceUnavailable as exc:
            # The map keeps what it knew; said once per outage, not every second.
            if not self._failing:
                logger.warning("cannot reload token revocations: %s", exc.detail)
            self._failing = True
        else:
            if self._failing:
                logger.info("token revocations reloaded again")
            self._failing = False

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.poll_seconds)
