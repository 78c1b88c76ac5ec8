"""Issues' tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lkern.issues.enums import IssuePriority, IssueStatus, IssueType
from lkern.issues.rules import StatusTimes, transition
from lkern.platform.db import Model, service_metadata
from lkern.platform.models import ResourceMixin, enum_check
from lkern.platform.storage.files import FilesList, files_column
from lkern.platform.trigram import trigram_indexes


class IssuesBase(Model):
    __abstract__ = True
    metadata = service_metadata()


#: Searched with ILIKE '%text%' (§11); trigram-indexed on PostgreSQL.
SEARCHED_COLUMNS = ("code", "title", "description")


class Issue(ResourceMixin, IssuesBase):
    __tablename__ = "issues"
    __table_args__ = (
        enum_check("type", IssueType),
        enum_check("status", IssueStatus),
        enum_check("priority", IssuePriority),
        *trigram_indexes("issues", SEARCHED_COLUMNS),
    )

    code: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default=IssueStatus.OPEN, index=True)
    priority: Mapped[str] = mapped_column(String(16), default=IssuePriority.MEDIUM, index=True)
    reporter_id: Mapped[uuid.UUID] = mapped_column(index=True)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    attachments: FilesList = files_column()
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    def move_to(self, target: IssueStatus, now: datetime) -> IssueStatus:
        """Take the transition to ``target`` (409 unless the status machine allows it),
        with the timestamps it sets or clears; returns the status left."""
        current = IssueStatus(self.status)
        times = transition(current, target, StatusTimes(self.resolved_at, self.closed_at), now=now)
        self.status = target
        self.resolved_at, self.closed_at = times.resolved_at, times.closed_at
        return current
