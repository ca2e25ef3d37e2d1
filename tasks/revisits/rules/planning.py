"""Revisit rules (定期回访): when a customer falls due, who gets the revisit, when it escalates.

Pure functions over values; the revisits flow feeds them chunks of rows selected in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from crm_db.enums import AbcClass, ContactChannel, EscalationTier
from crm_db.policy_defaults import REVISIT_DEFAULTS
from tasks.rules.calendar import WorkCalendar
from tasks.rules.escalation_ladder import Ladder, RecipientKind, Tier


@dataclass(frozen=True)
class Cadence:
    """One row of ``revisit_policies``."""

    abc_class: AbcClass
    cadence_days: int
    channel: ContactChannel
    overdue_after_days: int = 7


# The documented defaults (crm_db.policy_defaults), for a class without a policy row.
DEFAULT_CADENCES: Mapping[AbcClass, Cadence] = {
    d.abc_class: Cadence(d.abc_class, d.cadence_days, d.channel, d.overdue_after_days)
    for d in REVISIT_DEFAULTS
}


def natural_due(*, last_completed: date | None, customer_since: date, cadence_days: int) -> date:
    """Next due = last completed contact + cadence; a customer never contacted counts from the day
    they became a customer. A class change changes ``cadence_days`` and so the date."""
    return (last_completed or customer_since) + timedelta(days=cadence_days)


def planning_cutoff(as_of: date, calendar: WorkCalendar) -> date:
    """Customers whose natural due date is on or before this date are due at ``as_of``.

    Nothing falls due on a weekend or holiday: a date that lands there moves to the next working
    day. So on a non-working ``as_of`` only dates up to the last working day before it are due
    (they were already due then; a missed run catches up), and the rest wait for the next working
    day. This keeps the due test a single ``<=`` the database can use an index for.
    """
    return calendar.previous_working_day(as_of)


def scheduled_due(*, natural: date, as_of: date, calendar: WorkCalendar) -> date:
    """The ``due_on`` stored on a revisit created at ``as_of``: never before the day it was planned
    (a backlog is due now, not overdue at birth), and moved off weekends and holidays."""
    return calendar.next_working_day(max(natural, as_of))


def combined_notes(existing: str | None, new: str | None) -> str | None:
    """A revisit's notes after ``new`` is recorded: added below what was there (e.g. why the
    revisit was opened, in a customer's own words), never replacing it."""
    if not existing:
        return new
    if not new:
        return existing
    return f"{existing}\n\n{new}"


def overdue_ladder(overdue_after_days: int) -> Ladder:
    """The revisit ladder: open ``N`` days after due -> the branch manager; another ``N`` days ->
    the region manager. Each tier once; the tiers reached are the revisit's escalation
    timestamps (``branch_escalated_at``, ``region_escalated_at``)."""
    days = timedelta(days=overdue_after_days)
    return Ladder(
        (
            Tier(EscalationTier.BRANCH.value, RecipientKind.BRANCH_MANAGER, after=days),
            Tier(EscalationTier.REGION.value, RecipientKind.REGION_MANAGER, after=2 * days),
        )
    )


def escalation_level(*, branch_escalated: bool, region_escalated: bool) -> int:
    """The level a revisit reached (0, 1 branch, 2 region), derived from its timestamps."""
    return 2 if region_escalated else 1 if branch_escalated else 0
