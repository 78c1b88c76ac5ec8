"""Audited permanent deletion (§3): audit first, files next, row last.

The audit row is committed before anything is removed, so a crash or a
storage outage at any point leaves a record of what is still to be cleaned
up; the row itself disappears only once every file it owned is gone.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete

from lkern.platform.db import utcnow
from lkern.platform.enums import DeletionStatus
from lkern.platform.models import DeletionAudit
from lkern.platform.resources import Guard, R, ResourceKind
from lkern.platform.storage.port import ObjectStore, StorageUnavailable
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeletionOutcome:
    audit_id: uuid.UUID
    status: DeletionStatus


@dataclass(frozen=True, slots=True)
class Backoff:
    """When a deletion that storage interrupted is tried again: exponential, with jitter."""

    base_seconds: float = 5.0
    cap_seconds: float = 3600.0

    def delay(self, retries_so_far: int) -> timedelta:
        seconds = min(self.base_seconds * 2 ** min(retries_so_far, 30), self.cap_seconds)
        return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


@dataclass(frozen=True, slots=True)
class OwnedFiles(Generic[R]):
    """Where a resource's files are, which keys an item owns, and how removal is retried."""

    store: ObjectStore
    keys: Callable[[R], Sequence[str]]
    backoff: Backoff = Backoff()
    #: How long one attempt may hold an audit before another may take it over.
    lease: timedelta = timedelta(seconds=60)


class MarkedForCleanup(StorageUnavailable):
    def __init__(self) -> None:
        super().__init__("Storage unavailable, item marked for cleanup.")


async def permanently_delete(
    uow: UnitOfWork,
    kind: ResourceKind[R],
    item_id: Any,
    *,
    deleted_by: str | None = None,
    files: OwnedFiles[R] | None = None,
    refuse: Callable[[R], None] | None = None,
    guard: Guard[R] | None = None,
) -> DeletionOutcome:
    """Run the whole workflow for one item; the caller holds no transaction.

    ``refuse`` may raise a domain error for an item that must not go (a part
    with stock); it sees the item under its row lock, as ``guard`` does, which may
    also write what must change with the deletion. Raises
    ``MarkedForCleanup`` (a 503) when storage could not be reached: the item
    is then hidden and its audit left ``pending`` for the cleanup worker."""
    async with uow:
        item = await kind.load_attached(uow, item_id, include_deleted=True, lock=True)
        if refuse is not None:
            refuse(item)
        if guard is not None:
            await guard(uow, item)
        audit = DeletionAudit(
            item_id=item.id,
            item_code=getattr(item, "code", None),
            item_type=kind.name,
            status=DeletionStatus.PENDING,
            files_found=len(files.keys(item)) if files else 0,
            deleted_by=deleted_by,
            # This request makes the first attempt: no cleanup worker may
            # start on the audit while it does.
            claimed_by="request",
            claimed_until=utcnow() + (files.lease if files else timedelta(0)),
        )
        uow.session.add(audit)
        await uow.session.flush()
        item.deletion_audit_id = audit.id
        # Hidden from now on: a live item leaves the count here, a soft-deleted one already did.
        await kind.count_live(uow, 0 if item.is_deleted else -1)
        await uow.commit()
        audit_id = audit.id
    outcome = await finish_deletion(uow, kind, audit_id, files)
    if outcome.status is DeletionStatus.PENDING:
        raise MarkedForCleanup()
    return outcome


async def finish_deletion(
    uow: UnitOfWork,
    kind: ResourceKind[R],
    audit_id: uuid.UUID,
    files: OwnedFiles[R] | None,
    *,
    retry: bool = False,
) -> DeletionOutcome:
    """Remove the files of an item under deletion, then the item, recording each step.

    Safe to run again for the same audit (the cleanup worker does): removing
    a file that is already gone succeeds, and a completed audit is left as is.
    """
    async with uow:
        audit = await uow.session.get_one(DeletionAudit, audit_id)
        if audit.status == DeletionStatus.COMPLETED:
            return DeletionOutcome(audit_id, DeletionStatus.COMPLETED)
        item = await uow.session.get(kind.model, audit.item_id)
        keys = list(files.keys(item)) if files is not None and item is not None else []
        # What the events call the item: its id, or the code clients address it by.
        public_id = kind.key_of(item) if item is not None else audit.item_id
    deleted = failed = 0
    error: str | None = None
    for key in keys:
        assert files is not None
        try:
            await files.store.delete(key)
        except StorageUnavailable as exc:
            failed += 1
            error = exc.detail
            logger.warning("could not delete %s of %s %s: %s", key, kind.name, audit.item_id, exc)
        else:
            deleted += 1
    async with uow:
        audit = await uow.session.get_one(DeletionAudit, audit_id)
        if retry:
            audit.retry_count += 1
            audit.last_retry_at = utcnow()
        audit.files_found = len(keys)
        audit.files_deleted, audit.files_failed, audit.error_message = deleted, failed, error
        audit.claimed_by = audit.claimed_until = None
        if failed == 0:
            await uow.session.execute(delete(kind.model).where(kind.model.id == audit.item_id))
            audit.status = DeletionStatus.COMPLETED
            audit.completed_at = utcnow()
            audit.next_retry_at = None
            if kind.events is not None:
                uow.emit(
                    kind.events.permanently_deleted.model_validate(
                        {"id": public_id, "audit_id": audit_id}
                    ),
                    audit.item_id,
                )
        else:
            # Nothing removed: storage is away, the audit waits as it was.
            # Some removed: a real partial failure, worth an event of its own.
            audit.status = DeletionStatus.PENDING if deleted == 0 else DeletionStatus.PARTIAL
            assert files is not None  # nothing can fail without files
            audit.next_retry_at = utcnow() + files.backoff.delay(audit.retry_count)
            if audit.status == DeletionStatus.PARTIAL and kind.events is not None:
                failed_event = kind.events.deletion_failed
                if failed_event is not None:
                    uow.emit(
                        failed_event.model_validate(
                            {
                                "id": public_id,
                                "audit_id": audit_id,
                                "files_found": len(keys),
                                "files_deleted": deleted,
                                "files_failed": failed,
                                "error_message": error,
                            }
                        ),
                        audit.item_id,
                    )
        status = DeletionStatus(audit.status)
        await uow.commit()
    if status is DeletionStatus.COMPLETED:
        logger.info("%s %s permanently deleted (audit %s)", kind.name, audit.item_id, audit_id)
    return DeletionOutcome(audit_id, status)


class PermanentDeletionRead(BaseModel):
    audit_id: uuid.UUID = Field(description="The deletion audit that records this deletion.")
    status: DeletionStatus = Field(description="`completed`, or `pending` while files remain.")


class DeletionAuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Audit id.")
    item_id: uuid.UUID = Field(description="Id of the deleted item.")
    item_code: str | None = Field(description="Human-readable code of the item, if it had one.")
    item_type: str = Field(description="Kind of item.", examples=["contact"])
    status: DeletionStatus = Field(description="Where the deletion stands.")
    files_found: int = Field(description="Files the item owned.")
    files_deleted: int = Field(description="Files removed so far.")
    files_failed: int = Field(description="Files that could not be removed.")
    error_message: str | None = Field(description="Last error, if any.")
    retry_count: int = Field(description="Cleanup attempts after the first.")
    last_retry_at: datetime | None = Field(description="When cleanup was last retried.")
    started_at: datetime = Field(description="When the deletion began.")
    completed_at: datetime | None = Field(description="When the deletion completed.")
    deleted_by: str | None = Field(description="Who asked for the deletion.")
