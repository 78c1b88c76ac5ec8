"""Issues as the platform sees it."""

from pathlib import Path

from sqlalchemy import func, select

from lkern.issues.models import Issue, IssuesBase
from lkern.issues.service import ATTACHMENTS
from lkern.issues.views import router
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition


async def collect_metrics(runtime: ServiceRuntime) -> None:
    gauge = runtime.metrics.gauge(
        "lkern_issues", "Issues by status (soft-deleted left out).", ["status"]
    )
    async with runtime.unit_of_work() as uow:
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
    collect_metrics=collect_metrics,
)
