"""Issues' status machine and codes, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lkern.issues.enums import IssueStatus, IssueType
from lkern.issues.rules import FINAL, TRANSITIONS, StatusTimes, code_prefix, transition
from lkern.platform.errors import InvalidTransition

S = IssueStatus
EARLIER = datetime(2026, 11, 30, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
NONE = StatusTimes(None, None)


def test_codes_follow_the_type() -> None:
    assert [code_prefix(t) for t in IssueType] == ["BUG", "FEA", "IMP", "TSK"]


def test_resolving_stamps_resolved_at() -> None:
    assert transition(S.IN_PROGRESS, S.RESOLVED, NONE, now=NOW) == StatusTimes(NOW, None)


def test_reopening_clears_resolved_at() -> None:
    assert transition(S.RESOLVED, S.IN_PROGRESS, StatusTimes(EARLIER, None), now=NOW) == NONE


def test_closing_stamps_closed_at_and_keeps_resolved_at() -> None:
    times = transition(S.RESOLVED, S.CLOSED, StatusTimes(EARLIER, None), now=NOW)
    assert times == StatusTimes(EARLIER, NOW)


@pytest.mark.parametrize("current", [S.OPEN, S.IN_PROGRESS, S.RESOLVED])
def test_any_open_state_can_be_rejected(current: IssueStatus) -> None:
    assert transition(current, S.REJECTED, NONE, now=NOW) == NONE


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in S for t in S if t not in TRANSITIONS[c]],
)
def test_every_other_move_is_refused_with_the_allowed_targets(
    current: IssueStatus, target: IssueStatus
) -> None:
    with pytest.raises(InvalidTransition) as refused:
        transition(current, target, NONE, now=NOW)
    assert refused.value.extra["allowed"] == [s.value for s in TRANSITIONS[current]]


def test_final_states_lead_nowhere() -> None:
    assert all(TRANSITIONS[state] == () for state in FINAL)
    assert {state for state in S if not TRANSITIONS[state]} == FINAL
