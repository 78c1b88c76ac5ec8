"""Issues' domain rules: codes by type, the status machine and its timestamps. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lkern.issues.enums import IssuePriority, IssueStatus, IssueType
from lkern.platform.errors import InvalidTransition

CODE_PREFIXES = {
    IssueType.BUG: "BUG",
    IssueType.FEATURE: "FEA",
    IssueType.IMPROVEMENT: "IMP",
    IssueType.TASK: "TSK",
}

S = IssueStatus
FINAL = frozenset({S.CLOSED, S.REJECTED})
TRANSITIONS: dict[IssueStatus, tuple[IssueStatus, ...]] = {
    S.OPEN: (S.IN_PROGRESS, S.REJECTED),
    S.IN_PROGRESS: (S.RESOLVED, S.REJECTED),
    S.RESOLVED: (S.CLOSED, S.IN_PROGRESS, S.REJECTED),
    S.CLOSED: (),
    S.REJECTED: (),
}
#: Priorities from least to most urgent: sorting follows this, not the alphabet.
PRIORITY_RANK = {priority: rank for rank, priority in enumerate(IssuePriority)}


def code_prefix(issue_type: IssueType) -> str:
    return CODE_PREFIXES[issue_type]


@dataclass(frozen=True, slots=True)
class StatusTimes:
    """When an issue was resolved and closed; what a transition leaves behind."""

    resolved_at: datetime | None
    closed_at: datetime | None


def transition(
    current: IssueStatus, target: IssueStatus, times: StatusTimes, *, now: datetime
) -> StatusTimes:
    """The timestamps after going from ``current`` to ``target``, or ``INVALID_TRANSITION``.

    Resolving stamps ``resolved_at``; reopening (resolved → in progress)
    clears it, since the issue is no longer resolved; closing stamps
    ``closed_at`` and keeps when it was resolved.
    """
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise InvalidTransition(current.value, target.value, [status.value for status in allowed])
    if target is S.RESOLVED:
        return StatusTimes(resolved_at=now, closed_at=None)
    if target is S.IN_PROGRESS:
        return StatusTimes(resolved_at=None, closed_at=None)
    if target is S.CLOSED:
        return StatusTimes(resolved_at=times.resolved_at, closed_at=now)
    return times
