"""Audited permanent deletion (§3): audit first, files next, row last.

The audit row is committed before anything is removed, so a crash or a
storage outage at any point leaves a record of what is still to be cleaned
up; the row itself disappears only once every file it owned is gone.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from lkern.platform.auth import Role, require
from lkern.platform.db import utcnow
from lkern.platform.enums import DeletionStatus
from lkern.platform.models import DeletionAudit
from lkern.platform.pagination import Page, PageParams, newest_first, page_params
from lkern.platform.problems import problem_responses
from lkern.platform.resources import R, ResourceKind
from lkern.platform.routers import protected_router
from lkern.platform.runtime import Uow
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeletionOutcome:
    audit_id: uuid.UUID
    status: DeletionStatus


async def permanently_delete(
    uow: UnitOfWork,
    kind: ResourceKind[R],
    item_id: uuid.UUID,
    *,
    deleted_by: str | None = None,
    object_keys: Sequence[str] = (),
) -> DeletionOutcome:
    """Run the whole workflow for one item; the caller holds no transaction."""
    async with uow:
        item = await kind.load_attached(uow, item_id, include_deleted=True, lock=True)
        audit = DeletionAudit(
            item_id=item.id,
            item_code=getattr(item, "code", None),
            item_type=kind.name,
            status=DeletionStatus.PENDING,
            files_found=len(object_keys),
            deleted_by=deleted_by,
        )
        uow.session.add(audit)
        await uow.session.flush()
        item.deletion_audit_id = audit.id
        await uow.commit()
        audit_id = audit.id
    # Files come here once services own objects (object storage, §8).
    async with uow:
        await uow.session.execute(delete(kind.model).where(kind.model.id == item_id))
        audit = await uow.session.get_one(DeletionAudit, audit_id)
        audit.status = DeletionStatus.COMPLETED
        audit.completed_at = utcnow()
        if kind.events is not None:
            uow.emit(
                kind.events.permanently_deleted.model_validate(
                    {"id": item_id, "audit_id": audit_id}
                ),
                item_id,
            )
        await uow.commit()
    logger.info("%s %s permanently deleted (audit %s)", kind.name, item_id, audit_id)
    return DeletionOutcome(audit_id, DeletionStatus.COMPLETED)


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


router = protected_router(
    prefix="/api/v1/deletion-audits",
    tags=["deletion audits"],
    dependencies=[Depends(require(Role.ADMIN))],
)


@router.get(
    "",
    summary="List permanent-deletion audits, newest first",
    response_model=Page[DeletionAuditRead],
    responses=problem_responses(400, 422, 503),
)
async def list_deletion_audits(
    uow: Uow,
    paging: Annotated[PageParams, Depends(page_params)],
    status: Annotated[
        DeletionStatus | None, Query(description="Only audits in this state.")
    ] = None,
) -> Page[DeletionAuditRead]:
    stmt = select(DeletionAudit)
    if status is not None:
        stmt = stmt.where(DeletionAudit.status == status)
    async with uow:
        return await newest_first(
            uow.session,
            stmt,
            paging,
            moment=DeletionAudit.started_at,
            tie_breaker=DeletionAudit.id,
            read=DeletionAuditRead.model_validate,
        )
