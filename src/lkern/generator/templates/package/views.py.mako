"""${whose} REST routes: a thin layer over the service functions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Response, status

from lkern.platform.http import ExpectedVersion, with_etag
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import ServiceRuntime, Uow
% if files:
from lkern.platform.storage.routes import add_file_routes
% endif
from lkern.${name} import service
from lkern.${name}.enums import ${Noun}SortField
from lkern.${name}.models import ${Noun}
from lkern.${name}.schemas import ${Noun}Create, ${Noun}Read, ${Noun}Update
from lkern.${name}.service import ${"ATTACHMENTS, " if files else ""}${NOUN}

router = protected_router(prefix="/api/v1/${name}", tags=["${name}"])

${Noun}ListQuery = Annotated[
    ListQuery,
    Depends(
        list_query(
            ${Noun}SortField,
            ${Noun}SortField.NAME,
            searchable="${"code and name" if prefix else "name"}",
        )
    ),
]
IncludeDeleted = Annotated[bool, Query(description="Also find a soft-deleted ${noun}.")]


def _read(${noun}: ${Noun}, response: Response) -> ${Noun}Read:
    return with_etag(response, ${Noun}Read.model_validate, ${noun})


@router.get(
    "",
    summary="List ${name}",
    response_model=Page[${Noun}Read],
    responses=problem_responses(400, 422, 503),
)
async def list_${name}(
    uow: Uow,
    query: ${Noun}ListQuery,
    is_active: Annotated[
        bool | None, Query(description="Only active or only inactive ${name}.")
    ] = None,
) -> Page[${Noun}Read]:
    found = await service.list_${name}(uow, query, is_active=is_active)
    return found.page(${Noun}Read.model_validate)


@router.post(
    "",
    summary="Create a ${noun}",
    status_code=status.HTTP_201_CREATED,
    response_model=${Noun}Read,
    responses=problem_responses(400, 422, 503),
)
async def create_${noun}(data: ${Noun}Create, uow: Uow, response: Response) -> ${Noun}Read:
    ${noun} = await service.create_${noun}(uow, data)
    response.headers["Location"] = f"{router.prefix}/{${noun}.id}"
    return _read(${noun}, response)


@router.get(
    "/{${noun}_id:uuid}",
    summary="Get a ${noun}",
    response_model=${Noun}Read,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_${noun}(
    ${noun}_id: uuid.UUID, uow: Uow, response: Response, include_deleted: IncludeDeleted = False
) -> ${Noun}Read:
    ${noun} = await service.get_${noun}(uow, ${noun}_id, include_deleted=include_deleted)
    return _read(${noun}, response)


@router.put(
    "/{${noun}_id:uuid}",
    summary="Replace a ${noun} (fields left out go back to their defaults)",
    response_model=${Noun}Read,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_${noun}(
    ${noun}_id: uuid.UUID,
    data: ${Noun}Create,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> ${Noun}Read:
    ${noun} = await service.replace_${noun}(uow, ${noun}_id, data, expected_version=expected_version)
    return _read(${noun}, response)


@router.patch(
    "/{${noun}_id:uuid}",
    summary="Change some fields of a ${noun}",
    response_model=${Noun}Read,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_${noun}(
    ${noun}_id: uuid.UUID,
    data: ${Noun}Update,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> ${Noun}Read:
    ${noun} = await service.update_${noun}(uow, ${noun}_id, data, expected_version=expected_version)
    return _read(${noun}, response)


async def _present(_: ServiceRuntime, ${noun}: ${Noun}) -> ${Noun}Read:
    return ${Noun}Read.model_validate(${noun})


% if files:
add_file_routes(router, ATTACHMENTS, read_model=${Noun}Read, present=_present)
add_lifecycle_routes(router, ${NOUN}, read_model=${Noun}Read, present=_present, files=ATTACHMENTS)
% else:
add_lifecycle_routes(router, ${NOUN}, read_model=${Noun}Read, present=_present)
% endif
