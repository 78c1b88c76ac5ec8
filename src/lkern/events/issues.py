"""Events of the issues service (lkms103)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from lkern.events.base import AttachmentData, EventData, event


class IssueData(EventData):
    """An issue's public fields as they are after the change."""

    id: uuid.UUID
    code: str = Field(examples=["BUG-2612-0001"])
    title: str
    type: str
    status: str
    priority: str
    reporter_id: uuid.UUID
    assignee_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    attachment_count: int
    resolved_at: datetime | None
    closed_at: datetime | None
    version: int
    updated_at: datetime
    deleted_at: datetime | None


@event("lkern.issues.created")
class IssueCreated(IssueData):
    pass


@event("lkern.issues.updated")
class IssueUpdated(IssueData):
    previous: dict[str, Any] = Field(
        description="The changed fields' values before the change, by field name."
    )


@event("lkern.issues.status_changed")
class IssueStatusChanged(IssueData):
    from_status: str = Field(alias="from", description="Status before the transition.")
    to_status: str = Field(alias="to", description="Status after it (also in `status`).")


@event("lkern.issues.deleted")
class IssueDeleted(IssueData):
    pass


@event("lkern.issues.restored")
class IssueRestored(IssueData):
    pass


@event("lkern.issues.permanently_deleted")
class IssuePermanentlyDeleted(EventData):
    id: uuid.UUID
    audit_id: uuid.UUID


@event("lkern.issues.deletion_failed")
class IssueDeletionFailed(EventData):
    """Some of the issue's files could not be removed; the cleanup worker retries."""

    id: uuid.UUID
    audit_id: uuid.UUID
    files_found: int
    files_deleted: int
    files_failed: int
    error_message: str | None


@event("lkern.issues.attachment_added")
class IssueAttachmentAdded(EventData):
    id: uuid.UUID = Field(description="The issue's id.")
    version: int
    attachment: AttachmentData


@event("lkern.issues.attachment_removed")
class IssueAttachmentRemoved(EventData):
    id: uuid.UUID = Field(description="The issue's id.")
    version: int
    attachment: AttachmentData
