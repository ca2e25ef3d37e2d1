"""The 四个不漏 sweeps of the complaint check, as pure rules.

- every complaint handled: an unassigned open complaint goes to its customer's account manager
  while active, else to the branch manager (the shared ``tasks.rules.organisation.assign``);
- every result re-checked (复查): a complaint resolved but not verified after N working days
  reminds the branch manager, once.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from tasks.rules.business_time import local_instant
from tasks.rules.calendar import WorkCalendar
from tasks.rules.organisation import Assignment, Member, assign


def assignee_for(
    account_manager: Member | None, branch_manager: Member | None, *, has_branch: bool
) -> Assignment:
    """Who an unassigned complaint goes to (``skip`` set: nobody; the flow warns)."""
    return assign(
        account_manager=account_manager, branch_manager=branch_manager, has_branch=has_branch
    )


def verify_reminder_cutoff(
    today: date, working_days: int, calendar: WorkCalendar, zone: ZoneInfo
) -> datetime:
    """Complaints resolved before this instant have waited ``working_days`` full working days
    for verification by ``today``: the start of the local working day ``working_days`` working
    days before ``today`` (resolved on day D, reminded on the Nth working day after D)."""
    if working_days < 1:
        raise ValueError(f"working_days must be at least 1, got {working_days}")
    day = today
    for _ in range(working_days):
        # previous_working_day includes its argument: step back strictly.
        day = calendar.previous_working_day(date.fromordinal(day.toordinal() - 1))
    following = date.fromordinal(day.toordinal() + 1)
    return local_instant(datetime.combine(following, time(0)), zone)


__all__ = ["assignee_for", "verify_reminder_cutoff"]
