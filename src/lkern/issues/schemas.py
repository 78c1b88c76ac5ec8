"""Issues' API schemas: distinct create, update and read shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lkern.issues.enums import IssuePriority, IssueStatus, IssueType
from lkern.platform.schemas import PartialUpdate, Trimmed
from lkern.platform.storage.files import FileRead

Title = Annotated[str, Trimmed(255, 1)]
Description = Annotated[str, StringConstraints(max_length=20_000)]


class IssueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title = Field(description="One line, 1-255 characters.", examples=["Login fails"])
    description: Description | None = Field(
        default=None, description="Free text, up to 20,000 characters."
    )
    type: IssueType = Field(description="Decides the code's prefix.", examples=["bug"])
    priority: IssuePriority = Field(default=IssuePriority.MEDIUM, examples=["high"])
    assignee_id: uuid.UUID | None = Field(default=None, description="An active user of identity.")
    contact_id: uuid.UUID | None = Field(
        default=None, description="The customer concerned; must be an active contact."
    )


class IssueUpdate(PartialUpdate):
    """Partial update: only the fields sent change; null clears an optional field."""

    nullable: ClassVar[frozenset[str]] = frozenset({"description", "assignee_id", "contact_id"})

    title: Title | None = None
    description: Description | None = None
    type: IssueType | None = Field(default=None, description="Changing it keeps the code.")
    priority: IssuePriority | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="null unassigns.")
    contact_id: uuid.UUID | None = Field(default=None, description="null removes it.")


class IssueTransition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: IssueStatus = Field(description="The status to move to.", examples=["in_progress"])


class IssueRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Issue id (UUIDv7).")
    code: str = Field(examples=["BUG-2612-0001"])
    title: str
    description: str | None
    type: IssueType
    status: IssueStatus
    priority: IssuePriority
    reporter_id: uuid.UUID = Field(description="Who reported it (from their token).")
    assignee_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    attachments: list[FileRead]
    resolved_at: datetime | None
    closed_at: datetime | None
    version: int = Field(description="Incremented on every change; send it back in If-Match.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    is_deleted: bool
