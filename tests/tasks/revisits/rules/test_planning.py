from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from crm_db.enums import EscalationTier
from tasks.revisits.rules.planning import (
    combined_notes,
    escalation_level,
    natural_due,
    overdue_ladder,
    planning_cutoff,
    scheduled_due,
)
from tasks.rules.calendar import WorkCalendar
from tasks.rules.escalation_ladder import Org, Posts, Progress
from tasks.rules.organisation import SkipReason, assign, has_cycle, management_chain


@dataclass(frozen=True)
class _Member:
    id: int
    active: bool


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
    active = _Member(1, active=True)
    left = _Member(2, active=False)
    boss = _Member(3, active=True)
    assert assign(account_manager=active, branch_manager=boss, has_branch=True).assignee_id == 1
    moved = assign(account_manager=left, branch_manager=boss, has_branch=True)
    assert (moved.assignee_id, moved.needs_reassignment) == (3, True)
    orphan = assign(account_manager=None, branch_manager=None, has_branch=False)
    assert orphan.skip is SkipReason.NO_BRANCH
    nobody = assign(account_manager=left, branch_manager=None, has_branch=True)
    assert nobody.skip is SkipReason.NO_ASSIGNEE


def _tiers(as_of: date, reached: set[str]) -> list[str]:
    """The tiers the revisit ladder notifies for a revisit due on 1 Nov (7-day threshold)."""
    ladder = overdue_ladder(7)
    progress = Progress(elapsed=as_of - date(2026, 11, 1))
    return [n.tier.name for n in ladder.due(progress, reached, Posts(), Org({}))]


def test_overdue_tiers_each_once() -> None:
    branch, region = EscalationTier.BRANCH.value, EscalationTier.REGION.value
    assert _tiers(date(2026, 11, 7), set()) == []
    assert _tiers(date(2026, 11, 8), set()) == [branch]
    assert _tiers(date(2026, 11, 9), {branch}) == []
    assert _tiers(date(2026, 11, 15), {branch}) == [region]
    assert _tiers(date(2026, 12, 30), set()) == [branch, region]
    assert _tiers(date(2026, 12, 30), {branch, region}) == []


def test_escalation_level_is_derived_from_the_timestamps() -> None:
    assert escalation_level(branch_escalated=False, region_escalated=False) == 0
    assert escalation_level(branch_escalated=True, region_escalated=False) == 1
    assert escalation_level(branch_escalated=True, region_escalated=True) == 2


def test_management_chain_survives_cycles() -> None:
    managers = {1: 2, 2: 3, 3: None, 10: 11, 11: 12, 12: 10}
    assert management_chain(1, managers) == [2, 3]
    assert not has_cycle(1, managers)
    assert management_chain(10, managers) == [11, 12]
    assert has_cycle(10, managers)


def test_staff_in_cycles() -> None:
    from tasks.rules.organisation import staff_in_cycles

    assert staff_in_cycles({1: 2, 2: 3, 3: None, 10: 11, 11: 10, 12: 10}) == {10, 11, 12}


def test_combined_notes_add_below_and_never_replace() -> None:
    assert combined_notes(None, "new") == "new"
    assert combined_notes("why", None) == "why"
    assert combined_notes("why", "") == "why"
    assert combined_notes("why", "done") == "why\n\ndone"
    assert combined_notes(None, None) is None
