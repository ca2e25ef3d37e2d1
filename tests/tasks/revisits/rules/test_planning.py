from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from crm_db.enums import EscalationTier
from tasks.revisits.rules.planning import (
    SkipReason,
    StaffMember,
    assign,
    combined_notes,
    has_cycle,
    management_chain,
    natural_due,
    overdue_tiers,
    planning_cutoff,
    scheduled_due,
    within_contact_cap,
)
from tasks.rules.calendar import WorkCalendar

CAL = WorkCalendar(exceptions={date(2026, 10, 1): False})
MONDAY, SATURDAY = date(2026, 11, 23), date(2026, 11, 21)


def test_natural_due_counts_from_last_contact_or_customer_since() -> None:
    assert natural_due(
        last_completed=date(2026, 10, 1), customer_since=date(2020, 1, 1), cadence_days=30
    ) == date(2026, 10, 31)
    assert natural_due(
        last_completed=None, customer_since=date(2026, 8, 1), cadence_days=90
    ) == date(2026, 10, 30)


def test_weekend_due_dates_move_to_monday() -> None:
    assert planning_cutoff(MONDAY, CAL) == MONDAY
    assert planning_cutoff(SATURDAY, CAL) == date(2026, 11, 20)  # Friday
    assert scheduled_due(natural=SATURDAY, as_of=date(2026, 11, 20), calendar=CAL) == MONDAY
    assert scheduled_due(natural=date(2026, 9, 30), as_of=MONDAY, calendar=CAL) == MONDAY
    # A backlog planned on a weekend is due on the next working day, not on the weekend.
    assert scheduled_due(natural=date(2026, 9, 30), as_of=SATURDAY, calendar=CAL) == MONDAY
    assert scheduled_due(natural=date(2026, 10, 1), as_of=date(2026, 9, 25), calendar=CAL) == date(
        2026, 10, 2
    )


def test_assignment() -> None:
    active = StaffMember(1, active=True, has_email=True)
    left = StaffMember(2, active=False, has_email=True)
    boss = StaffMember(3, active=True, has_email=True)
    assert assign(account_manager=active, branch_manager=boss, has_branch=True).assignee_id == 1
    moved = assign(account_manager=left, branch_manager=boss, has_branch=True)
    assert (moved.assignee_id, moved.needs_reassignment) == (3, True)
    orphan = assign(account_manager=None, branch_manager=None, has_branch=False)
    assert orphan.skip is SkipReason.NO_BRANCH
    nobody = assign(account_manager=left, branch_manager=None, has_branch=True)
    assert nobody.skip is SkipReason.NO_ASSIGNEE


def test_contact_cap() -> None:
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert within_contact_cap(last_customer_email_at=None, now=now, cap_days=7)
    assert not within_contact_cap(
        last_customer_email_at=now - timedelta(days=6), now=now, cap_days=7
    )
    assert within_contact_cap(last_customer_email_at=now - timedelta(days=7), now=now, cap_days=7)


def test_overdue_tiers_each_once() -> None:
    due = date(2026, 11, 1)
    assert (
        overdue_tiers(
            due_on=due, as_of=date(2026, 11, 7), overdue_after_days=7, already_escalated=0
        )
        == []
    )
    assert overdue_tiers(
        due_on=due, as_of=date(2026, 11, 8), overdue_after_days=7, already_escalated=0
    ) == [EscalationTier.BRANCH]
    assert (
        overdue_tiers(
            due_on=due, as_of=date(2026, 11, 9), overdue_after_days=7, already_escalated=1
        )
        == []
    )
    assert overdue_tiers(
        due_on=due, as_of=date(2026, 11, 15), overdue_after_days=7, already_escalated=1
    ) == [EscalationTier.REGION]
    assert overdue_tiers(
        due_on=due, as_of=date(2026, 12, 30), overdue_after_days=7, already_escalated=0
    ) == [EscalationTier.BRANCH, EscalationTier.REGION]
    assert (
        overdue_tiers(
            due_on=due, as_of=date(2026, 12, 30), overdue_after_days=7, already_escalated=2
        )
        == []
    )


def test_management_chain_survives_cycles() -> None:
    managers = {1: 2, 2: 3, 3: None, 10: 11, 11: 12, 12: 10}
    assert management_chain(1, managers) == [2, 3]
    assert not has_cycle(1, managers)
    assert management_chain(10, managers) == [11, 12]
    assert has_cycle(10, managers)


def test_staff_in_cycles() -> None:
    from tasks.revisits.rules.planning import staff_in_cycles

    assert staff_in_cycles({1: 2, 2: 3, 3: None, 10: 11, 11: 10, 12: 10}) == {10, 11, 12}


def test_combined_notes_add_below_and_never_replace() -> None:
    assert combined_notes(None, "new") == "new"
    assert combined_notes("why", None) == "why"
    assert combined_notes("why", "") == "why"
    assert combined_notes("why", "done") == "why\n\ndone"
    assert combined_notes(None, None) is None
