"""Issues' REST routes: a thin layer over the service functions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Response, status

from lkern.clients.contacts import CONTACTS_PEER, ContactsDirectory, GrpcContactsDirectory
from lkern.clients.identity import IDENTITY_PEER, GrpcUsersDirectory, UsersDirectory
from lkern.issues import service
from lkern.issues.enums import IssuePriority, IssueSortField, IssueStatus, IssueType
from lkern.issues.models import Issue
from lkern.issues.schemas import IssueCreate, IssueRead, IssueTransition, IssueUpdate
from lkern.issues.service import ATTACHMENTS, ISSUE, MAX_LIMIT
from lkern.platform.auth import CurrentPrincipal
from lkern.platform.http import ExpectedVersion, with_etag
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import ServiceRuntime, Uow, get_runtime
from lkern.platform.storage.routes import add_file_routes

router = protected_router(prefix="/api/v1/issues", tags=["issues"])

IssueListQuery = Annotated[
    ListQuery,
    Depends(
        list_query(
            IssueSortField,
            IssueSortField.CREATED_AT,
            max_limit=MAX_LIMIT,
            searchable="code, title and description",
        )
    ),
]
IncludeDeleted = Annotated[bool, Query(description="Also find a soft-deleted issue.")]


# async: the gRPC channels belong to the event loop, not to a worker thread.
async def _users(runtime: Annotated[ServiceRuntime, Depends(get_runtime)]) -> UsersDirectory:
    return GrpcUsersDirectory(runtime.peer(IDENTITY_PEER.name))


async def _contacts(
    runtime: Annotated[ServiceRuntime, Depends(get_runtime)],
) -> ContactsDirectory:
    return GrpcContactsDirectory(runtime.peer(CONTACTS_PEER.name))


Users = Annotated[UsersDirectory, Depends(_users)]
Contacts = Annotated[ContactsDirectory, Depends(_contacts)]


def _read(issue: Issue, response: Response) -> IssueRead:
    return with_etag(response, IssueRead.model_validate, issue)


@router.get(
    "",
    summary="List issues",
    response_model=Page[IssueRead],
    responses=problem_responses(400, 422, 503),
)
async def list_issues(
    uow: Uow,
    query: IssueListQuery,
    type: Annotated[IssueType | None, Query(description="Only issues of this type.")] = None,
    status: Annotated[IssueStatus | None, Query(description="Only issues in this status.")] = None,
    priority: Annotated[
        IssuePriority | None, Query(description="Only issues of this priority.")
    ] = None,
    assignee_id: Annotated[uuid.UUID | None, Query(description="Only this user's issues.")] = None,
    reporter_id: Annotated[
        uuid.UUID | None, Query(description="Only issues this user reported.")
    ] = None,
) -> Page[IssueRead]:
    found = await service.list_issues(
        uow,
        query,
        type=type,
        status=status,
        priority=priority,
        assignee_id=assignee_id,
        reporter_id=reporter_id,
    )
    return found.page(IssueRead.model_validate)


@router.post(
    "",
    summary="Report an issue (assignee and contact are checked with identity and contacts)",
    status_code=status.HTTP_201_CREATED,
    response_model=IssueRead,
    responses=problem_responses(400, 409, 422, 503),
)
async def create_issue(
    data: IssueCreate,
    uow: Uow,
    principal: CurrentPrincipal,
    users: Users,
    contacts: Contacts,
    response: Response,
) -> IssueRead:
    issue = await service.create_issue(
        uow, data, reporter_id=uuid.UUID(principal.subject), users=users, contacts=contacts
    )
    response.headers["Location"] = f"{router.prefix}/{issue.id}"
    return _read(issue, response)


@router.get(
    "/{issue_id:uuid}",
    summary="Get an issue with its attachments",
    response_model=IssueRead,
    responses=problem_responses(400, 404, 422, 503),
)
async def get_issue(
    issue_id: uuid.UUID, uow: Uow, response: Response, include_deleted: IncludeDeleted = False
) -> IssueRead:
    issue = await service.get_issue(uow, issue_id, include_deleted=include_deleted)
    return _read(issue, response)


@router.patch(
    "/{issue_id:uuid}",
    summary="Change some fields of an issue (the code stays, whatever the type)",
    response_model=IssueRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def update_issue(
    issue_id: uuid.UUID,
    data: IssueUpdate,
    uow: Uow,
    users: Users,
    contacts: Contacts,
    expected_version: ExpectedVersion,
    response: Response,
) -> IssueRead:
    issue = await service.update_issue(
        uow,
        issue_id,
        data,
        expected_version=expected_version,
        users=users,
        contacts=contacts,
    )
    return _read(issue, response)


@router.put(
    "/{issue_id:uuid}",
    summary="Replace an issue (what the body leaves out goes back to its default)",
    response_model=IssueRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def replace_issue(
    issue_id: uuid.UUID,
    data: IssueCreate,
    uow: Uow,
    users: Users,
    contacts: Contacts,
    expected_version: ExpectedVersion,
    response: Response,
) -> IssueRead:
    issue = await service.replace_issue(
        uow,
        issue_id,
        data,
        expected_version=expected_version,
        users=users,
        contacts=contacts,
    )
    return _read(issue, response)


@router.post(
    "/{issue_id:uuid}/transition",
    summary="Move an issue along open → in progress → resolved → closed, or reject it",
    response_model=IssueRead,
    responses=problem_responses(400, 404, 409, 412, 422, 503),
)
async def transition_issue(
    issue_id: uuid.UUID,
    data: IssueTransition,
    uow: Uow,
    expected_version: ExpectedVersion,
    response: Response,
) -> IssueRead:
    issue = await service.transition_issue(uow, issue_id, data, expected_version=expected_version)
    return _read(issue, response)


async def _present(_: ServiceRuntime, issue: Issue) -> IssueRead:
    return IssueRead.model_validate(issue)


add_file_routes(router, ATTACHMENTS, read_model=IssueRead, present=_present)
add_lifecycle_routes(router, ISSUE, read_model=IssueRead, present=_present, files=ATTACHMENTS)
