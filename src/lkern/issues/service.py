"""Issues' use cases; each owns its transaction through the unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import case

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
from lkern.issues.rules import PRIORITY_RANK, StatusTimes, code_prefix, transition
from lkern.issues.schemas import IssueCreate, IssueTransition, IssueUpdate
from lkern.platform.codes import next_code
from lkern.platform.db import utcnow
from lkern.platform.errors import Unprocessable
from lkern.platform.http import check_version
from lkern.platform.pagination import ListQuery, paginate, search_clause
from lkern.platform.resources import LifecycleEvents, ResourceKind
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
        return await ISSUE.read(uow, issue_id, include_deleted=include_deleted)


async def list_issues(
    uow: UnitOfWork,
    query: ListQuery,
    *,
    type: IssueType | None = None,
    status: IssueStatus | None = None,
    priority: IssuePriority | None = None,
    assignee_id: uuid.UUID | None = None,
    reporter_id: uuid.UUID | None = None,
) -> tuple[list[Issue], int]:
    stmt = ISSUE.visible(include_deleted=query.include_deleted)
    for column, value in (
        (Issue.type, type),
        (Issue.status, status),
        (Issue.priority, priority),
        (Issue.assignee_id, assignee_id),
        (Issue.reporter_id, reporter_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.search:
        stmt = stmt.where(search_clause(query.search, SEARCH_COLUMNS))
    async with uow:
        return await paginate(
            uow.session, stmt, query, sort_columns=SORT_COLUMNS, tie_breaker=Issue.id
        )


async def update_issue(
    uow: UnitOfWork,
    issue_id: uuid.UUID,
    data: IssueUpdate,
    *,
    expected_version: int | None,
    users: UsersDirectory,
    contacts: ContactsDirectory,
) -> Issue:
    changes = data.model_dump(exclude_unset=True)
    await _check_people(
        users,
        contacts,
        assignee_id=changes.get("assignee_id"),
        contact_id=changes.get("contact_id"),
    )
    async with uow:
        issue = await ISSUE.get(uow.session, issue_id)
        check_version(issue.version, expected_version)
        previous = {
            field: getattr(issue, field)
            for field, value in changes.items()
            if getattr(issue, field) != value
        }
        for field in previous:
            setattr(issue, field, changes[field])
        if previous:
            await uow.session.flush()
            uow.emit(IssueUpdated(**snapshot(issue), previous=_as_json(previous)), issue.id)
        await uow.commit()
        return issue


async def transition_issue(
    uow: UnitOfWork, issue_id: uuid.UUID, data: IssueTransition, *, expected_version: int | None
) -> Issue:
    async with uow:
        issue = await ISSUE.get(uow.session, issue_id)
        check_version(issue.version, expected_version)
        current = IssueStatus(issue.status)
        times = transition(
            current, data.to, StatusTimes(issue.resolved_at, issue.closed_at), now=utcnow()
        )
        issue.status = data.to
        issue.resolved_at, issue.closed_at = times.resolved_at, times.closed_at
        await uow.session.flush()
        uow.emit(
            IssueStatusChanged(
                **snapshot(issue), from_status=current.value, to_status=data.to.value
            ),
            issue.id,
        )
        await uow.commit()
        return issue


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    return {
        field: str(value) if isinstance(value, uuid.UUID) else value
        for field, value in values.items()
    }
