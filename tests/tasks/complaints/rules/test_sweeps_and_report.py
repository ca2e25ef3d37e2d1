"""Pure sweep rules (assignment, verification reminder) and the report's controls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tasks.complaints.rules.report import ControlCounts, controls, per_100k, trend_pct
from tasks.complaints.rules.sweeps import assignee_for, verify_reminder_cutoff
from tasks.rules.calendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class _Member:
    id: int
    active: bool


def test_unassigned_goes_to_the_active_account_manager_else_the_branch_manager() -> None:
    assert assignee_for(_Member(1, True), _Member(2, True), has_branch=True).assignee_id == 1
    assert assignee_for(_Member(1, False), _Member(2, True), has_branch=True).assignee_id == 2
    nobody = assignee_for(_Member(1, False), _Member(2, False), has_branch=True)
    assert nobody.assignee_id is None and nobody.skip is not None


def test_verify_reminder_cutoff_counts_working_days() -> None:
    # Wednesday 2026-11-25, 2 working days: resolved on Monday 23rd or earlier is reminded.
    cutoff = verify_reminder_cutoff(date(2026, 11, 25), 2, WorkCalendar(), SH)
    assert cutoff == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # Tuesday 00:00 Shanghai
    # Monday 30th: the weekend does not count -> resolved on Thursday 26th or earlier.
    monday = verify_reminder_cutoff(date(2026, 11, 30), 2, WorkCalendar(), SH)
    assert monday == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="working_days"):
        verify_reminder_cutoff(date(2026, 11, 30), 0, WorkCalendar(), SH)


def test_controls_are_per_100k_customers_and_flag_the_goal() -> None:
    result = controls(ControlCounts(200_000, 5, 1, 3, 4, 3))
    assert (result.complaint_rate, result.omission_rate, result.dissatisfaction_rate) == (
        2.5,
        0.5,
        1.5,
    )
    assert result.sla_compliance_pct == 75.0
    assert result.over_goal() == ["complaint_rate", "dissatisfaction_rate"]
    empty = controls(ControlCounts(0, 0, 0, 0, 0, 0))
    assert empty.complaint_rate is None and empty.sla_compliance_pct is None
    assert per_100k(1, 100_000) == 1.0
    assert trend_pct(15, 10) == 50.0 and trend_pct(3, 0) is None
