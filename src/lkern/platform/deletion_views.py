"""The deletion audits route (§3, admin): every permanent deletion, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy import select

from lkern.platform.auth import Role, require
from lkern.platform.deletion import DeletionAuditRead
from lkern.platform.enums import DeletionStatus
from lkern.platform.models import DeletionAudit
from lkern.platform.pagination import Page, PageParams, newest_first, page_params
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.runtime import Uow

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
