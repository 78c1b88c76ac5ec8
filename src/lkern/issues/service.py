"""Issues' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, case

from lkern.clients.contacts import ContactsDirectory
from lkern.clients.identity import UsersDirectory
from lkern.events.issues import (
    IssueAttachmentAdded,
    IssueAttachmentRemoved,
    IssueCreated,
    IssueData,
    IssueDeleted,
    IssueDeletionFailed,
    IssuePermanentlyDeleted,
    IssueRestored,
    IssueStatusChanged,
    IssueUpdated,
)
from lkern.issues.enums import IssuePriority, IssueStatus, IssueType
from lkern.issues.models import SEARCHED_COLUMNS, Issue
from lkern.issues.rules import PRIORITY_RANK, code_prefix
from lkern.issues.schemas import IssueCreate, IssueTransition, IssueUpdate
from lkern.platform.codes import next_code
from lkern.platform.db import utcnow
from lkern.platform.errors import Unprocessable
from lkern.platform.pagination import SEARCH, ListQuery, RowPages, Slice, search_clause
from lkern.platform.resources import LifecycleEvents, ResourceKind, ResourceRow, listed
from lkern.platform.schemas import partial_changes, replacement
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.uow import UnitOfWork

SERVICE = "issues"
MAX_LIMIT = 500


def snapshot(issue: Issue) -> dict[str, Any]:
    """The issue's public fields, as every issues event carries them."""
    fields = {
        name: getattr(issue, name) for name in IssueData.model_fields if name != "attachment_count"
    }
    return {**fields, "attachment_count": len(issue.attachments or [])}


ISSUE = ResourceKind(
    Issue,
    "issue",
    events=LifecycleEvents(
        updated=IssueUpdated,
        deleted=IssueDeleted,
        restored=IssueRestored,
        permanently_deleted=IssuePermanentlyDeleted,
        deletion_failed=IssueDeletionFailed,
        snapshot=snapshot,
    ),
)
ATTACHMENTS = FileSlot(
    ISSUE,
    attribute="attachments",
    service=SERVICE,
    noun="attachment",
    added=IssueAttachmentAdded,
    removed=IssueAttachmentRemoved,
)
SORT_COLUMNS: dict[str, Any] = {
    "code": Issue.code,
    "created_at": Issue.created_at,
    "updated_at": Issue.updated_at,
    # Urgency, not the alphabet: low < medium < high < critical.
    "priority": case(
        {priority.value: rank for priority, rank in PRIORITY_RANK.items()}, value=Issue.priority
    ),
    "status": Issue.status,
}
SEARCH_COLUMNS = tuple(getattr(Issue, column) for column in SEARCHED_COLUMNS)
#: The columns a list filters on by equality, each bound by its own name.
FILTERED = ("type", "status", "priority", "assignee_id", "reporter_id")


async def _check_people(
    users: UsersDirectory,
    contacts: ContactsDirectory,
    *,
    assignee_id: uuid.UUID | None,
    contact_id: uuid.UUID | None,
) -> None:
    """Ask identity and contacts before any transaction opens: no connection is held
    while they answer."""
    if assignee_id is not None:
        reason = await users.why_not_assignable(assignee_id)
        if reason is not None:
            raise Unprocessable(reason, field="body.assignee_id", code="ASSIGNEE_INVALID")
    if contact_id is not None:
        reason = await contacts.why_invalid(contact_id)
        if reason is not None:
            raise Unprocessable(reason, field="body.contact_id", code="CONTACT_INVALID")


async def create_issue(
    uow: UnitOfWork,
    data: IssueCreate,
    *,
    reporter_id: uuid.UUID,
    users: UsersDirectory,
    contacts: ContactsDirectory,
) -> Issue:
    await _check_people(users, contacts, assignee_id=data.assignee_id, contact_id=data.contact_id)
    async with uow:
        values = data.model_dump()
        values["code"] = await next_code(uow.session, code_prefix(data.type))
        values["reporter_id"] = reporter_id
        values["attachments"] = []
        issue = await ISSUE.insert(uow, values)
        uow.emit(IssueCreated(**snapshot(issue)), issue.id)
        await uow.commit()
        return issue


async def get_issue(
    uow: UnitOfWork, issue_id: uuid.UUID, *, include_deleted: bool = False
) -> Issue:
    async with uow.read_only():
        return await ISSUE.read_detached(uow, issue_id, include_deleted=include_deleted)


def _matching(include_deleted: bool, filters: tuple[str, ...], search: bool) -> Any:
    stmt = ISSUE.select_visible_rows(include_deleted=include_deleted)
    for name in filters:
        stmt = stmt.where(getattr(Issue, name) == bindparam(name))
    if search:
        stmt = stmt.where(search_clause(bindparam(SEARCH), SEARCH_COLUMNS))
    return stmt


PAGES = RowPages(_matching, sort_columns=SORT_COLUMNS, tie_breaker=Issue.id, item=listed)


async def list_issues(
    uow: UnitOfWork,
    query: ListQuery,
    *,
    type: IssueType | None = None,
    status: IssueStatus | None = None,
    priority: IssuePriority | None = None,
    assignee_id: uuid.UUID | None = None,
    reporter_id: uuid.UUID | None = None,
) -> Slice[ResourceRow]:
    """A page of issues as rows: the list only shows them."""
    given = dict(zip(FILTERED, (type, status, priority, assignee_id, reporter_id), strict=True))
    params = {name: value for name, value in given.items() if value is not None}
    shape = (query.include_deleted, tuple(params), bool(query.search))
    return await PAGES.read(uow, query, shape, params)


async def update_issue(
    uow: UnitOfWork,
    issue_id: uuid.UUID,
    data: IssueUpdate,
    *,
    expected_version: int | None,
    users: UsersDirectory,
    contacts: ContactsDirectory,
) -> Issue:
    """``PATCH``: only the fields sent change; ``updated`` tells what they were before."""
    return await _write(uow, issue_id, data, expected_version, users, contacts, replace=False)


async def replace_issue(
    uow: UnitOfWork,
    issue_id: uuid.UUID,
    data: IssueCreate,
    *,
    expected_version: int | None,
    users: UsersDirectory,
    contacts: ContactsDirectory,
) -> Issue:
    """``PUT``: the whole issue as sent (its code, status and files stay)."""
    return await _write(uow, issue_id, data, expected_version, users, contacts, replace=True)


async def _write(
    uow: UnitOfWork,
    issue_id: uuid.UUID,
    data: IssueCreate | IssueUpdate,
    expected_version: int | None,
    users: UsersDirectory,
    contacts: ContactsDirectory,
    *,
    replace: bool,
) -> Issue:
    sent = data.model_fields_set if not replace else set(type(data).model_fields)
    await _check_people(
        users,
        contacts,
        assignee_id=data.assignee_id if "assignee_id" in sent else None,
        contact_id=data.contact_id if "contact_id" in sent else None,
    )
    previous: dict[str, Any] = {}

    async def apply(issue: Issue, values: dict[str, Any]) -> None:
        for field, value in values.items():
            if getattr(issue, field) != value:
                previous[field] = getattr(issue, field)
                setattr(issue, field, value)

    def updated(issue: Issue) -> IssueUpdated:
        return IssueUpdated(**snapshot(issue), previous=_as_json(previous))

    async def change(issue: Issue) -> None:
        values = replacement(data) if replace else partial_changes(data)
        await apply(issue, values)

    return await ISSUE.change(
        uow, issue_id, expected_version=expected_version, apply=change, event=updated
    )


async def transition_issue(
    uow: UnitOfWork, issue_id: uuid.UUID, data: IssueTransition, *, expected_version: int | None
) -> Issue:
    left: list[IssueStatus] = []

    async def apply(issue: Issue) -> None:
        left.append(issue.move_to(data.to, utcnow()))

    def status_changed(issue: Issue) -> IssueStatusChanged:
        return IssueStatusChanged(
            **snapshot(issue), from_status=left[0].value, to_status=data.to.value
        )

    return await ISSUE.change(
        uow, issue_id, expected_version=expected_version, apply=apply, event=status_changed
    )


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    return {
        field: str(value) if isinstance(value, uuid.UUID) else value
        for field, value in values.items()
    }
