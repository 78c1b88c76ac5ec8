"""The cleanup worker (§8): finishes permanent deletions that storage interrupted.

Every replica runs it. An audit is worked on by one replica at a time: it is
claimed with a conditional UPDATE (a lease that only an unclaimed or expired
audit accepts), which PostgreSQL and SQLite both apply atomically, so two
replicas racing for the same audit see exactly one of them win. Between
attempts an audit waits for its backoff (``next_retry_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update

from lkern.platform.db import utcnow
from lkern.platform.deletion import DeletionOutcome, OwnedFiles, finish_deletion
from lkern.platform.enums import DeletionStatus
from lkern.platform.ids import new_id
from lkern.platform.models import DeletionAudit
from lkern.platform.resources import ResourceKind
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)

UNFINISHED = (DeletionStatus.PENDING, DeletionStatus.PARTIAL)


@dataclass(frozen=True, slots=True)
class Cleanable:
    """A resource kind whose permanent deletions may need finishing, and its files."""

    kind: ResourceKind[Any]
    files: OwnedFiles[Any]


class AuditBusy(LookupError):
    """Another replica holds the audit right now."""


class CleanupWorker:
    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        cleanables: Mapping[str, Cleanable],
        *,
        lease_seconds: float = 60.0,
        poll_seconds: float = 5.0,
    ) -> None:
        self.unit_of_work = unit_of_work
        self.cleanables = cleanables
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        #: Names this replica's leases; unique per worker instance.
        self.replica = new_id().hex[:16]

    async def run(self, stopping: asyncio.Event) -> None:
        """Work off due audits one at a time until stopped."""
        while not stopping.is_set():
            worked = await self.retry_due()
            if worked == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.poll_seconds)

    async def retry_due(self, *, batch: int = 20) -> int:
        """Attempt every audit whose backoff is over; returns how many were attempted."""
        attempted = 0
        for audit_id in await self._candidates(due_only=True, limit=batch):
            try:
                await self.retry(audit_id)
            except AuditBusy:
                continue
            attempted += 1
        return attempted

    async def retry_all(
        self, progress: Callable[[DeletionOutcome], None] | None = None
    ) -> list[DeletionOutcome]:
        """Attempt every unfinished audit now, backoff or not (an operator asked);
        ``progress`` hears of each as it ends."""
        outcomes = []
        for audit_id in await self._candidates(due_only=False, limit=None):
            try:
                outcome = await self.retry(audit_id)
            except AuditBusy:
                continue
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
        return outcomes

    async def retry(self, audit_id: uuid.UUID) -> DeletionOutcome:
        """Claim one audit and finish it as far as storage lets; ``AuditBusy`` if held."""
        item_type = await self._claim(audit_id)
        cleanable = self.cleanables.get(item_type)
        if cleanable is None:
            # Another service's audit type, or a resource without files: nothing to do here.
            await self._release(audit_id)
            raise LookupError(f"no cleanup for items of type {item_type!r}")
        outcome = await finish_deletion(
            self.unit_of_work(), cleanable.kind, audit_id, cleanable.files, retry=True
        )
        logger.info("cleanup of audit %s: %s", audit_id, outcome.status)
        return outcome

    async def _candidates(self, *, due_only: bool, limit: int | None) -> list[uuid.UUID]:
        now = utcnow()
        stmt = (
            select(DeletionAudit.id)
            .where(DeletionAudit.status.in_(UNFINISHED))
            .where(DeletionAudit.item_type.in_(list(self.cleanables)))
            .where(or_(DeletionAudit.claimed_until.is_(None), DeletionAudit.claimed_until < now))
            .order_by(DeletionAudit.next_retry_at, DeletionAudit.id)
            .limit(limit)
        )
        if due_only:
            stmt = stmt.where(
                or_(DeletionAudit.next_retry_at.is_(None), DeletionAudit.next_retry_at <= now)
            )
        async with self.unit_of_work() as uow:
            return list((await uow.session.scalars(stmt)).all())

    async def _claim(self, audit_id: uuid.UUID) -> str:
        now = utcnow()
        async with self.unit_of_work() as uow:
            claimed = await uow.session.execute(
                update(DeletionAudit)
                .where(DeletionAudit.id == audit_id)
                .where(DeletionAudit.status.in_(UNFINISHED))
                .where(
                    or_(DeletionAudit.claimed_until.is_(None), DeletionAudit.claimed_until < now)
                )
                .values(claimed_by=self.replica, claimed_until=now + self.lease)
                .returning(DeletionAudit.item_type)
            )
            item_type = claimed.scalar_one_or_none()
            await uow.commit()
        if item_type is None:
            raise AuditBusy(audit_id)
        return str(item_type)

    async def _release(self, audit_id: uuid.UUID) -> None:
        async with self.unit_of_work() as uow:
            await uow.session.execute(
                update(DeletionAudit)
                .where(DeletionAudit.id == audit_id, DeletionAudit.claimed_by == self.replica)
                .values(claimed_by=None, claimed_until=None)
            )
            await uow.commit()
