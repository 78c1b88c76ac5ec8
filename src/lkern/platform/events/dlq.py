"""Admin routes over a service's dead letters: list them, replay them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from lkern.platform.auth import Role, require
from lkern.platform.errors import NotFound
from lkern.platform.events.dead_letters import DeadLetter, DeadLetterStatus, replay_dead_letters
from lkern.platform.pagination import Page, PageParams, newest_first, page_params
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.runtime import Runtime

router = protected_router(
    prefix="/api/v1/dlq", tags=["dead letters"], dependencies=[Depends(require(Role.ADMIN))]
)


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Dead letter id (use it to replay).")
    event_id: str = Field(description="The CloudEvent id.")
    consumer_group: str
    topic: str
    event_type: str | None
    error: str = Field(description="The last error of the handler.")
    attempts: int = Field(description="Times the handler was tried.")
    status: DeadLetterStatus
    failed_at: datetime
    replayed_at: datetime | None


class ReplayResult(BaseModel):
    id: uuid.UUID
    result: str = Field(description="`processed`, `duplicate`, `ignored` or `failed: …`.")


@router.get(
    "",
    summary="List dead-lettered events, newest first",
    response_model=Page[DeadLetterRead],
    responses=problem_responses(400, 422, 503),
)
async def list_dead_letters(
    runtime: Runtime,
    paging: Annotated[PageParams, Depends(page_params)],
    status: Annotated[
        DeadLetterStatus | None, Query(description="Only letters in this state.")
    ] = None,
) -> Page[DeadLetterRead]:
    stmt = select(DeadLetter)
    if status is not None:
        stmt = stmt.where(DeadLetter.status == status)
    async with runtime.unit_of_work() as uow:
        return await newest_first(
            uow.session,
            stmt,
            paging,
            moment=DeadLetter.failed_at,
            tie_breaker=DeadLetter.id,
            read=DeadLetterRead.model_validate,
        )


@router.post(
    "/replay",
    summary="Replay every pending dead letter",
    response_model=list[ReplayResult],
    responses=problem_responses(503),
)
async def replay_all(runtime: Runtime) -> list[ReplayResult]:
    return await _replay(runtime, None)


@router.post(
    "/{letter_id}/replay",
    summary="Replay one dead letter",
    response_model=ReplayResult,
    responses=problem_responses(404, 422, 503),
)
async def replay_one(letter_id: uuid.UUID, runtime: Runtime) -> ReplayResult:
    results = await _replay(runtime, [letter_id])
    if not results:
        raise NotFound(f"No pending dead letter {letter_id}.", code="DEAD_LETTER_NOT_FOUND")
    return results[0]


async def _replay(runtime: Runtime, ids: list[uuid.UUID] | None) -> list[ReplayResult]:
    handlers = runtime.definition.event_handlers
    assert handlers is not None, "the dead-letter routes exist only where there are handlers"
    results = await replay_dead_letters(runtime.unit_of_work, handlers, runtime.name, ids)
    return [ReplayResult(id=letter_id, result=result) for letter_id, result in results]
