"""Inventory's REST routes: a thin layer over the service functions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from lkern.inventory import service
from lkern.inventory.enums import PartSortField, ProjectSortField
from lkern.inventory.imports import import_csv
from lkern.inventory.models import Box, Project
from lkern.inventory.rules import Buildability
from lkern.inventory.schemas import (
    PART_ID_PATTERN,
    BoxCreate,
    BoxLocationRead,
    BoxRead,
    BoxUpdate,
    BuildabilityRead,
    BuildRequest,
    ImportResult,
    PartCreate,
    PartRead,
    PartUpdate,
    PlacementRead,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
    StockAdd,
    StockChangeRead,
    StockMove,
    StockRemove,
    SuggestionRead,
)
from lkern.inventory.service import DOCUMENTS, PART, PROJECT, ListedPart, StockedPart
from lkern.platform.auth import CurrentPrincipal
from lkern.platform.bodies import max_body_bytes
from lkern.platform.errors import Unprocessable
from lkern.platform.http import ExpectedVersion, set_etag
from lkern.platform.pagination import ListQuery, Page, PageParams, list_query, page_params
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import Runtime, ServiceRuntime, Uow
from lkern.platform.storage.routes import add_file_routes


class PartIdConvertor(Convertor[str]):
    """``{part_id:part}``: a path segment of 4 capital letters, so ``/parts/import`` and
    other siblings are never taken for a part."""

    regex = "[A-Z]{4}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("part", PartIdConvertor())

parts = protected_router(prefix="/api/v1/parts", tags=["parts"])
boxes = protected_router(prefix="/api/v1/boxes", tags=["boxes"])
projects = protected_router(prefix="/api/v1/projects", tags=["projects"])

#: Part routes match only 4 capital letters, so ``/parts/import`` is never a part.
PART_PATH = "{part_id:part}"
PartId = Annotated[str, Path(pattern=PART_ID_PATTERN, description="The part's 4-letter id.")]
PartListQuery = Annotated[
    ListQuery,
    Depends(
        list_query(
            PartSortField,
            PartSortField.ID,
            searchable="id, description, manufacturer, manufacturer code, category, tags, "
            "attribute values and document file names",
        )
    ),
]
ProjectListQuery = Annotated[
    ListQuery, Depends(list_query(ProjectSortField, ProjectSortField.NAME, searchable="name"))
]
Paging = Annotated[PageParams, Depends(page_params)]
IncludeDeleted = Annotated[bool, Query(description="Also find a soft-deleted item.")]


#: What PartRead shows of a part entity under the same name (``id`` is its code).
_PART_ATTRIBUTES = tuple(
    name for name in PartRead.model_fields if name not in {"id", "locations", "is_deleted"}
)


def _read(values: Mapping[str, Any], locations: list[tuple[int, int, int]]) -> PartRead:
    """PartRead of a part's stored values (an entity's or a row's) and its locations."""
    return PartRead.model_validate(
        {
            **values,
            "id": values["code"],
            "documents": values["documents"] or [],
            "locations": [
                {"box_no": box_no, "loc_no": loc_no, "quantity": quantity}
                for box_no, loc_no, quantity in locations
            ],
            "is_deleted": values["deleted_at"] is not None,
        }
    )


def part_read(found: StockedPart) -> PartRead:
    part = found.part
    values = {name: getattr(part, name) for name in _PART_ATTRIBUTES}
    return _read({**values, "code": part.code}, found.locations)


def listed_part_read(found: ListedPart) -> PartRead:
    """PartRead of a listed part's row, read by key (no entity to go through)."""
    return _read(found.part, found.locations)


def _part(found: StockedPart, response: Response) -> PartRead:
    set_etag(response, found.part.version)
    return part_read(found)


def _user(principal: Any) -> str:
    return str(principal.subject)


@parts.get(
    "",
    summary="List and search parts",
    response_model=Page[PartRead],
    responses=problem_responses(400, 422, 503),
)
async def list_parts(
    uow: Uow,
    query: PartListQuery,
    category: Annotated[
        str | None, Query(max_length=100, description="Only this category.")
    ] = None,
    tag: Annotated[
        str | None, Query(max_length=100, description="Only parts with this tag.")
    ] = None,
    in_stock: Annotated[
        bool | None, Query(description="true: only parts with stock; false: only without.")
    ] = None,
) -> Page[PartRead]:
    found = await service.list_parts(uow, query, category=category, tag=tag, in_stock=in_stock)
    return found.page(listed_part_read)


@parts.post(
    "",
    summary="Create a part (its 4-letter id is generated)",
    status_code=status.HTTP_201_CREATED,
    response_model=PartRead,
    responses=problem_responses(400, 409, 422, 503),
)
async def create_part(data: PartCreate, uow: Uow, response: Response) -> PartRead:
    found = await service.create_part(uow, data)
    response.headers["Location"] = f"{parts.prefix}/{found.part.code}"
    return _part(found, response)


@parts.post(
    "/import",
    summary="Import parts (and stock) from CSV; nothing is written unless every row is valid",
    response_model=ImportResult,
    # 409: no free part ids left for the new parts (PART_IDS_EXHAUSTED).
    responses=problem_responses(400, 409, 413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
@max_body_bytes(lambda settings: settings.upload_max_bytes)  # a CSV of 10,000 parts or more
async def import_parts(
    request: Request,
    runtime: Runtime,
    principal: CurrentPrincipal,
    response: Response,
    dry_run: Annotated[bool, Query(description="Check every row, write nothing.")] = False,
) -> ImportResult:
    body = await request.body()
    try:
        content = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unprocessable("The CSV is not UTF-8 text.", code="CSV_NOT_UTF8") from None
    result = await import_csv(
        runtime.unit_of_work, content, dry_run=dry_run, user_id=_user(principal)
    )
    if result.errors:
        raise Unprocessable(
            f"{len(result.errors)} problems in {result.rows} rows; nothing was written.",
            code="IMPORT_ROWS_INVALID",
            extra={
                "errors": [
                    {
                        "field": f"row {e.row}" + (f" {e.field}" if e.field else ""),
                        "message": e.message,
                    }
                    for e in result.errors
                ],
                "rows": [e.model_dump() for e in result.errors],
            },
        )
    return result


@parts.get(
    f"/{PART_PATH}",
    summary="Get a part with its locations and documents",
    response_model=PartRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_part(
    part_id: PartId, uow: Uow, response: Response, include_deleted: IncludeDeleted = False
) -> PartRead:
    return _part(await service.get_part(uow, part_id, include_deleted=include_deleted), response)


@parts.patch(
    f"/{PART_PATH}",
    summary="Change some fields of a part",
    response_model=PartRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_part(
    part_id: PartId,
    data: PartUpdate,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> PartRead:
    found = await service.update_part(uow, part_id, data, expected_version=expected_version)
    return _part(found, response)


@parts.put(
    f"/{PART_PATH}",
    summary="Replace a part (what the body leaves out goes back to its default)",
    response_model=PartRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_part(
    part_id: PartId,
    data: PartCreate,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> PartRead:
    found = await service.replace_part(uow, part_id, data, expected_version=expected_version)
    return _part(found, response)


STOCK_PROBLEMS = problem_responses(400, 404, 409, 412, 422, 503)


@parts.post(
    f"/{PART_PATH}/stock/add",
    summary="Put stock of the part into a location (free, or holding this part)",
    response_model=PartRead,
    responses=STOCK_PROBLEMS,
)
async def add_stock(
    part_id: PartId,
    data: StockAdd,
    runtime: Runtime,
    principal: CurrentPrincipal,
    expected_version: ExpectedVersion,
    response: Response,
) -> PartRead:
    found = await service.add_stock(
        runtime.unit_of_work(),
        part_id,
        data,
        user_id=_user(principal),
        expected_version=expected_version,
    )
    return _part(found, response)


@parts.post(
    f"/{PART_PATH}/stock/remove",
    summary="Take stock of the part out of a location (never more than it holds)",
    response_model=PartRead,
    responses=STOCK_PROBLEMS,
)
async def remove_stock(
    part_id: PartId,
    data: StockRemove,
    runtime: Runtime,
    principal: CurrentPrincipal,
    expected_version: ExpectedVersion,
    response: Response,
) -> PartRead:
    found = await service.remove_stock(
        runtime.unit_of_work(),
        part_id,
        data,
        user_id=_user(principal),
        expected_version=expected_version,
    )
    return _part(found, response)


@parts.post(
    f"/{PART_PATH}/stock/move",
    summary="Move stock of the part from one location to another",
    response_model=PartRead,
    responses=STOCK_PROBLEMS,
)
async def move_stock(
    part_id: PartId,
    data: StockMove,
    runtime: Runtime,
    principal: CurrentPrincipal,
    expected_version: ExpectedVersion,
    response: Response,
) -> PartRead:
    found = await service.move_stock(
        runtime.unit_of_work(),
        part_id,
        data,
        user_id=_user(principal),
        expected_version=expected_version,
    )
    return _part(found, response)


@parts.get(
    f"/{PART_PATH}/history",
    summary="The part's quantity history, newest first",
    response_model=Page[StockChangeRead],
    responses=problem_responses(400, 404, 422, 503),
)
async def part_history(
    part_id: PartId, uow: Uow, paging: Paging, include_deleted: IncludeDeleted = False
) -> Page[StockChangeRead]:
    found = await service.history(uow, part_id, paging, include_deleted=include_deleted)
    return found.page(StockChangeRead.model_validate)


@parts.get(
    f"/{PART_PATH}/placement",
    summary="Where to put more of the part: free locations, ranked and explained",
    response_model=PlacementRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def placement(
    part_id: PartId,
    uow: Uow,
    limit: Annotated[int, Query(ge=1, le=100, description="How many suggestions.")] = 5,
) -> PlacementRead:
    found = await service.placement(uow, part_id, limit)
    return PlacementRead(
        suggestions=[
            SuggestionRead(box_no=s.box_no, loc_no=s.loc_no, rule=s.rule, reason=s.reason)
            for s in found
        ]
    )


async def _present_part(runtime: ServiceRuntime, part: Any) -> PartRead:
    return part_read(await service.stocked(runtime.unit_of_work(), part))


add_file_routes(
    parts,
    DOCUMENTS,
    read_model=PartRead,
    present=_present_part,
    segment="documents",
    id_type=str,
    id_converter=":part",
)
add_lifecycle_routes(
    parts,
    PART,
    read_model=PartRead,
    present=_present_part,
    files=DOCUMENTS,
    id_type=str,
    id_converter=":part",
    refuse_permanent=service.refuse_if_stocked,
)


# --- boxes ----------------------------------------------------------------------------


def box_read(box: Box) -> BoxRead:
    return BoxRead(
        box_no=box.box_no,
        description=box.description,
        capacity=box.capacity,
        used=box.used,
        utilisation=round(box.used / box.capacity, 4),
        version=box.version,
        created_at=box.created_at,
        updated_at=box.updated_at,
    )


BoxNo = Annotated[int, Path(ge=1, le=2_000_000_000, description="The box's number.")]


@boxes.post(
    "",
    summary="Add a box (its number is the next one)",
    status_code=status.HTTP_201_CREATED,
    response_model=BoxRead,
    responses=problem_responses(400, 422, 503),
)
async def create_box(data: BoxCreate, uow: Uow, response: Response) -> BoxRead:
    box = await service.create_box(uow, data)
    response.headers["Location"] = f"{boxes.prefix}/{box.box_no}"
    set_etag(response, box.version)
    return box_read(box)


@boxes.get(
    "",
    summary="List boxes with their used locations and utilisation",
    response_model=Page[BoxRead],
    responses=problem_responses(400, 422, 503),
)
async def list_boxes(uow: Uow, paging: Paging) -> Page[BoxRead]:
    return (await service.list_boxes(uow, paging)).page(box_read)


@boxes.get(
    "/{box_no:int}",
    summary="Get a box",
    response_model=BoxRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_box(box_no: BoxNo, uow: Uow, response: Response) -> BoxRead:
    box = await service.get_box(uow, box_no)
    set_etag(response, box.version)
    return box_read(box)


@boxes.patch(
    "/{box_no:int}",
    summary="Change a box's description or capacity",
    response_model=BoxRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_box(
    box_no: BoxNo, data: BoxUpdate, uow: Uow, expected_version: ExpectedVersion, response: Response
) -> BoxRead:
    box = await service.update_box(uow, box_no, data, expected_version=expected_version)
    set_etag(response, box.version)
    return box_read(box)


@boxes.delete(
    "/{box_no:int}",
    summary="Delete an empty box",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def delete_box(box_no: BoxNo, uow: Uow, expected_version: ExpectedVersion) -> Response:
    await service.delete_box(uow, box_no, expected_version=expected_version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@boxes.get(
    "/{box_no:int}/locations",
    summary="Every location of the box in order, with what it holds",
    response_model=list[BoxLocationRead],
    responses=problem_responses(400, 404, 422, 503),
)
async def box_locations(box_no: BoxNo, uow: Uow) -> list[BoxLocationRead]:
    return [BoxLocationRead(**row) for row in await service.box_locations(uow, box_no)]


# --- projects -------------------------------------------------------------------------


def project_read(project: Project) -> ProjectRead:
    return ProjectRead.model_validate(project)


def _project(project: Project, response: Response) -> ProjectRead:
    set_etag(response, project.version)
    return project_read(project)


def buildability_read(result: Buildability) -> BuildabilityRead:
    return BuildabilityRead(
        builds=result.builds,
        max_buildable=result.max_buildable,
        can_build=result.can_build,
        parts=[
            {
                "part_id": need.part_id,
                "required": need.required,
                "available": need.available,
                "shortfall": need.shortfall,
            }
            for need in result.parts
        ],
    )


ProjectId = uuid.UUID


@projects.get(
    "",
    summary="List projects",
    response_model=Page[ProjectRead],
    responses=problem_responses(400, 422, 503),
)
async def list_projects(uow: Uow, query: ProjectListQuery) -> Page[ProjectRead]:
    return (await service.list_projects(uow, query)).page(project_read)


@projects.post(
    "",
    summary="Create a project with its requirements per build",
    status_code=status.HTTP_201_CREATED,
    response_model=ProjectRead,
    responses=problem_responses(400, 422, 503),
)
async def create_project(data: ProjectCreate, uow: Uow, response: Response) -> ProjectRead:
    project = await service.create_project(uow, data)
    response.headers["Location"] = f"{projects.prefix}/{project.id}"
    return _project(project, response)


@projects.get(
    "/{project_id:uuid}",
    summary="Get a project",
    response_model=ProjectRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_project(
    project_id: uuid.UUID, uow: Uow, response: Response, include_deleted: IncludeDeleted = False
) -> ProjectRead:
    project = await service.get_project(uow, project_id, include_deleted=include_deleted)
    return _project(project, response)


@projects.patch(
    "/{project_id:uuid}",
    summary="Change some fields of a project",
    response_model=ProjectRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_project(
    project_id: uuid.UUID,
    data: ProjectUpdate,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> ProjectRead:
    project = await service.update_project(uow, project_id, data, expected_version=expected_version)
    return _project(project, response)


@projects.put(
    "/{project_id:uuid}",
    summary="Replace a project",
    response_model=ProjectRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_project(
    project_id: uuid.UUID,
    data: ProjectCreate,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> ProjectRead:
    project = await service.replace_project(
        uow, project_id, data, expected_version=expected_version
    )
    return _project(project, response)


@projects.get(
    "/{project_id:uuid}/buildability",
    summary="Can it be built: the most builds the stock allows, and what is short",
    response_model=BuildabilityRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def buildability(
    project_id: uuid.UUID,
    uow: Uow,
    builds: Annotated[int, Query(gt=0, le=1_000_000, description="Builds wanted.")] = 1,
) -> BuildabilityRead:
    return buildability_read(await service.buildability(uow, project_id, builds))


@projects.post(
    "/{project_id:uuid}/build",
    summary="Build: consume the stock of N builds, all or nothing",
    response_model=BuildabilityRead,
    responses=problem_responses(400, 404, 409, 422, 503),
)
async def build_project(
    project_id: uuid.UUID, data: BuildRequest, runtime: Runtime, principal: CurrentPrincipal
) -> BuildabilityRead:
    result = await service.build(
        runtime.unit_of_work(), project_id, data.builds, user_id=_user(principal)
    )
    return buildability_read(result)


async def _present_project(_: ServiceRuntime, project: Project) -> ProjectRead:
    return project_read(project)


add_lifecycle_routes(projects, PROJECT, read_model=ProjectRead, present=_present_project)
