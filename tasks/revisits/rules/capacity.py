"""Revisit capacity rule: which working day each due revisit is planned for.

An account manager can make so many visits and so many phone calls a working day (policy rows
``revisit.capacity.*``). The first run, or any day with a backlog, would otherwise hand a
manager hundreds of revisits at once - and escalate them all a week later. So the revisits that
fall due are planned over the following working days, each on the first day its assignee still
has room for its kind, earliest-overdue first and, on the same day, A class before B before C.

Care emails (the email channel) take no manager time and are not capacity-bound: they go out
as planning decides, under the contact cap. Visits and calls are.

A revisit is planned within ``window`` working days from its first possible day. When every
day of the window is full, it goes to the least-booked day of the window anyway, flagged
``over_capacity``: a manager with more customers than capacity needs help (more staff, or
customers reassigned), and the revisit still has a day on which it escalates.

Pure: values in, decisions out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from crm_db.enums import AbcClass, ContactChannel
from crm_db.policy_defaults import (
    REVISIT_CALLS_PER_DAY,
    REVISIT_SPREAD_WORKING_DAYS,
    REVISIT_VISITS_PER_DAY,
)
from tasks.rules.calendar import WorkCalendar

# Which daily capacity a channel uses; a channel not here (email, survey) is not bound.
CAPACITY_CHANNELS: tuple[ContactChannel, ...] = (ContactChannel.VISIT, ContactChannel.PHONE)
_CLASS_RANK = {AbcClass.A: 0, AbcClass.B: 1, AbcClass.C: 2}


@dataclass(frozen=True)
class Capacity:
    """Per account manager and working day (the ``revisit.capacity.*`` policy rows)."""

    visits_per_day: int = REVISIT_VISITS_PER_DAY.default
    calls_per_day: int = REVISIT_CALLS_PER_DAY.default
    window_working_days: int = REVISIT_SPREAD_WORKING_DAYS.default

    def __post_init__(self) -> None:
        for setting, value in (
            (REVISIT_VISITS_PER_DAY, self.visits_per_day),
            (REVISIT_CALLS_PER_DAY, self.calls_per_day),
            (REVISIT_SPREAD_WORKING_DAYS, self.window_working_days),
        ):
            if value < 1:
                raise ValueError(f"policy {setting.key} must be at least 1, got {value}")

    def per_day(self, channel: ContactChannel) -> int | None:
        """The daily capacity ``channel`` uses; ``None`` when it is not capacity-bound."""
        if channel is ContactChannel.VISIT:
            return self.visits_per_day
        if channel is ContactChannel.PHONE:
            return self.calls_per_day
        return None


@dataclass(frozen=True, slots=True)
class Pending:
    """A due revisit without a planned day."""

    revisit_id: int
    assignee_id: int
    channel: ContactChannel
    abc_class: AbcClass
    overdue_since: date  # when the customer fell due by cadence (orders the backlog)
    not_before: date  # its due date: never planned earlier


@dataclass(frozen=True, slots=True)
class PlannedDay:
    revisit_id: int
    assignee_id: int
    channel: ContactChannel
    day: date
    over_capacity: bool  # every day of the window was full


# (assignee, channel, day) -> revisits already planned for that day.
Booked = Mapping[tuple[int, ContactChannel, date], int]


def backlog_order(item: Pending) -> tuple[date, int, int]:
    """Earliest-overdue first; on the same day A class first; then the older revisit."""
    return (item.overdue_since, _CLASS_RANK.get(item.abc_class, len(_CLASS_RANK)), item.revisit_id)


def window_days(first: date, calendar: WorkCalendar, length: int) -> list[date]:
    """The ``length`` working days from ``first`` on (``first`` itself if it is one)."""
    days: list[date] = []
    day = calendar.next_working_day(first)
    while len(days) < length:
        days.append(day)
        day = calendar.next_working_day(day + timedelta(days=1))
    return days


def plan_days(
    pending: Iterable[Pending],
    *,
    as_of: date,
    calendar: WorkCalendar,
    capacity: Capacity,
    booked: Booked,
) -> list[PlannedDay]:
    """A planned day for every capacity-bound item of ``pending`` (others are left out), in
    backlog order: the first working day from ``max(as_of, not_before)`` on where the assignee
    has room for the item's kind, counting ``booked`` (earlier runs' plans) and the items
    planned before it; within the capacity window, or its least-booked day when the window is
    full."""
    load: dict[tuple[int, ContactChannel, date], int] = dict(booked)
    windows: dict[date, list[date]] = {}
    # (assignee, channel, first day) -> index in the window before which every day is full:
    # items of one manager mostly share a first day, so each scan starts where the last ended.
    full_before: dict[tuple[int, ContactChannel, date], int] = {}
    decisions: list[PlannedDay] = []
    for item in sorted(pending, key=backlog_order):
        limit = capacity.per_day(item.channel)
        if limit is None:
            continue
        first = max(as_of, item.not_before)
        days = windows.get(first)
        if days is None:
            days = windows[first] = window_days(first, calendar, capacity.window_working_days)
        cursor_key = (item.assignee_id, item.channel, first)
        index = full_before.get(cursor_key, 0)
        while index < len(days) and load.get((*cursor_key[:2], days[index]), 0) >= limit:
            index += 1
        full_before[cursor_key] = index
        over = index == len(days)
        if over:
            day = min(days, key=lambda d: load.get((item.assignee_id, item.channel, d), 0))
        else:
            day = days[index]
        key = (item.assignee_id, item.channel, day)
        load[key] = load.get(key, 0) + 1
        decisions.append(PlannedDay(item.revisit_id, item.assignee_id, item.channel, day, over))
    return decisions


def planned_day(due_on: date, planned_for: date | None) -> date:
    """The day a revisit is planned for: its planned day, or (never planned) its due date.
    Escalation and the digest count from it."""
    return planned_for or due_on


def deferred(decisions: Sequence[PlannedDay], as_of: date) -> int:
    """How many of ``decisions`` wait for a later day than ``as_of``."""
    return sum(1 for d in decisions if d.day > as_of)


__all__ = [
    "CAPACITY_CHANNELS",
    "Booked",
    "Capacity",
    "Pending",
    "PlannedDay",
    "backlog_order",
    "deferred",
    "plan_days",
    "planned_day",
    "window_days",
]
