"""What one reconciliation run covers, given its kind and date (pure).

- ``monthly`` (after the cut-off): the last complete month period - the month before the one
  ``as_of`` falls in (or the month given) - in full; MoM and YoY compare whole months.
- ``weekly`` (Sunday mornings): the month period of yesterday, from its start through
  yesterday (today is not over), against the target pro-rated by the working days elapsed;
  MoM and YoY compare the same number of days from the start of those months. The snapshot is
  labelled with the ISO week of ``as_of``.
- A monthly run of the third month of a quarter (March, June, September, December by the
  policy's rule) also closes that quarter (``quarter``): its award list is judged on the
  quarter's figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from tasks.rules.calendar import WorkCalendar
from tasks.targets.rules.periods import (
    Period,
    PeriodPolicy,
    elapsed_share,
    month_containing,
    month_period,
    parse_month,
    previous_month,
    quarter_containing,
    same_month_last_year,
    week_containing,
)


class RunKind(StrEnum):
    MONTHLY = "monthly"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Span:
    start: date
    end: date  # inclusive; end < start: an empty span
    month: str  # the month period it belongs to (YYYY-MM)

    @property
    def year_start(self) -> date:
        """1 January of its month's year: "developed this year" starts here."""
        return date(parse_month(self.month)[0], 1, 1)


@dataclass(frozen=True)
class RunPlan:
    kind: RunKind
    label: str  # the snapshot's period label: 2026-11, 2026-W49
    month: Period  # the target month
    through: date  # actuals up to and including this day
    current: Span
    previous_month: Span
    previous_year: Span
    elapsed_working_days: int
    total_working_days: int
    quarter: Period | None = None  # the quarter a monthly run closes, else None


def _whole(period: Period) -> Span:
    return Span(period.start, period.end, period.label)


def _same_length(period: Period, days: int) -> Span:
    return Span(period.start, min(period.end, period.start + timedelta(days=days)), period.label)


def plan_run(
    kind: RunKind,
    as_of: date,
    policy: PeriodPolicy,
    days: WorkCalendar,
    month: str | None = None,
) -> RunPlan:
    """The plan of a ``kind`` run on ``as_of`` (``month``: a monthly run for that month)."""
    if kind is RunKind.MONTHLY:
        target = (
            month_period(*parse_month(month), policy, days)
            if month
            else previous_month(month_containing(as_of, policy, days), policy, days)
        )
        before = previous_month(target, policy, days)
        last_year = same_month_last_year(target, policy, days)
        elapsed, total = elapsed_share(target, target.end, days)
        closes = parse_month(target.label)[1] % 3 == 0
        return RunPlan(
            kind,
            target.label,
            target,
            target.end,
            _whole(target),
            _whole(before),
            _whole(last_year),
            elapsed,
            total,
            quarter_containing(target.end, policy, days) if closes else None,
        )
    through = as_of - timedelta(days=1)
    target = month_containing(through, policy, days)
    offset = (through - target.start).days
    elapsed, total = elapsed_share(target, through, days)
    return RunPlan(
        kind,
        week_containing(as_of, policy, days).label,
        target,
        through,
        Span(target.start, through, target.label),
        _same_length(previous_month(target, policy, days), offset),
        _same_length(same_month_last_year(target, policy, days), offset),
        elapsed,
        total,
    )
