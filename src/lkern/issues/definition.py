"""Issues as the platform sees it."""

from pathlib import Path

from sqlalchemy import func, select

from lkern.clients.contacts import CONTACTS_PEER
from lkern.clients.identity import IDENTITY_PEER
from lkern.events.issues import (
    IssueAttachmentAdded,
    IssueAttachmentRemoved,
    IssueCreated,
    IssueDeleted,
    IssueDeletionFailed,
    IssuePermanentlyDeleted,
    IssueRestored,
    IssueStatusChanged,
    IssueUpdated,
)
from lkern.issues.models import Issue, IssuesBase
from lkern.issues.service import ATTACHMENTS
from lkern.issues.settings import IssuesSettings
from lkern.issues.views import router
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory


async def collect_metrics(unit_of_work: UnitOfWorkFactory, metrics: ServiceMetrics) -> None:
    gauge = metrics.gauge("lkern_issues", "Issues by status (soft-deleted left out).", ["status"])
    async with unit_of_work() as uow:
        rows = await uow.session.execute(
            select(Issue.status, func.count())
            .where(Issue.deleted_at.is_(None), Issue.deletion_audit_id.is_(None))
            .group_by(Issue.status)
        )
        for status, number in rows.all():
            gauge.labels(status).set(number)


ISSUES = ServiceDefinition(
    name="issues",
    code="lkms103",
    title="Issues",
    description="Support issues from report to close, with their attachments.",
    version="0.1.0",
    rest_port=8103,
    metadata=IssuesBase.metadata,
    routers=[router],
    migrations_dir=Path(__file__).parent / "migrations",
    file_slots=[ATTACHMENTS],
    issues_codes=True,
    peers=[IDENTITY_PEER, CONTACTS_PEER],
    settings_class=IssuesSettings,
    produces=[
        IssueCreated,
        IssueUpdated,
        IssueStatusChanged,
        IssueDeleted,
        IssueRestored,
        IssuePermanentlyDeleted,
        IssueDeletionFailed,
        IssueAttachmentAdded,
        IssueAttachmentRemoved,
    ],
    collect_metrics=collect_metrics,
)
