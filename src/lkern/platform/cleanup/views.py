"""The cleanup routes (§8, admin): what waits for storage, and retrying it now."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from lkern.platform.auth import Role, require
from lkern.platform.cleanup.worker import UNFINISHED, AuditBusy, CleanupWorker
from lkern.platform.deletion import DeletionAuditRead, PermanentDeletionRead
from lkern.platform.errors import Conflict, NotFound
from lkern.platform.models import DeletionAudit
from lkern.platform.pagination import Page, PageParams, newest_first, page_params
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.runtime import Runtime, ServiceRuntime, Uow

router = protected_router(
    prefix="/api/v1/cleanup", tags=["cleanup"], dependencies=[Depends(require(Role.ADMIN))]
)


class RetryResults(BaseModel):
    results: list[PermanentDeletionRead] = Field(description="Each audit attempted, as it ends.")


def _worker(runtime: ServiceRuntime) -> CleanupWorker:
    if runtime.cleanup is None:
        raise NotFound("This service has no cleanup.", code="CLEANUP_NOT_AVAILABLE")
    return runtime.cleanup


@router.get(
    "/pending",
    summary="Permanent deletions waiting for storage (pending or partial), newest first",
    response_model=Page[DeletionAuditRead],
    responses=problem_responses(400, 422, 503),
)
async def list_pending(
    uow: Uow, paging: Annotated[PageParams, Depends(page_params)]
) -> Page[DeletionAuditRead]:
    stmt = select(DeletionAudit).where(DeletionAudit.status.in_(UNFINISHED))
    async with uow:
        return await newest_first(
            uow.session,
            stmt,
            paging,
            moment=DeletionAudit.started_at,
            tie_breaker=DeletionAudit.id,
            read=DeletionAuditRead.model_validate,
        )


@router.post(
    "/retry",
    summary="Retry every waiting deletion now",
    response_model=RetryResults,
    responses=problem_responses(400, 422, 503),
)
async def retry_all(runtime: Runtime) -> RetryResults:
    outcomes = await _worker(runtime).retry_all()
    return RetryResults(
        results=[PermanentDeletionRead(audit_id=o.audit_id, status=o.status) for o in outcomes]
    )


@router.post(
    "/retry/{audit_id:uuid}",
    summary="Retry one waiting deletion now",
    response_model=PermanentDeletionRead,
    responses=problem_responses(400, 404, 409, 422, 503),
)
async def retry_one(
    audit_id: Annotated[uuid.UUID, Path(description="The deletion audit's id.")],
    runtime: Runtime,
) -> PermanentDeletionRead:
    worker = _worker(runtime)
    async with runtime.unit_of_work() as uow:
        audit = await uow.session.get(DeletionAudit, audit_id)
    if audit is None:
        raise NotFound(f"Deletion audit {audit_id} not found.", code="AUDIT_NOT_FOUND")
    if audit.status not in UNFINISHED:
        return PermanentDeletionRead(audit_id=audit_id, status=audit.status)
    try:
        outcome = await worker.retry(audit_id)
    except AuditBusy:
        raise Conflict(
            f"Deletion audit {audit_id} is being cleaned up right now.", code="CLEANUP_IN_PROGRESS"
        ) from None
    return PermanentDeletionRead(audit_id=outcome.audit_id, status=outcome.status)
