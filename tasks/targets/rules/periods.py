"""Reporting periods of the target reconciliation, as pure rules over the business calendar.

- **Calendar month** (the default): the 1st to the last day of the month.
- **Settlement month** (结算月): from the day after the previous month's cut-off to this month's
  cut-off (the 26th to the 25th by default). When the cut-off day is a rest day of the business
  calendar, the cut-off moves to the previous working day (``earlier``, the default) or the next
  one (``later``) by policy. Each month's period starts the day after the previous month's
  *moved* cut-off, so the months tile the days with no gap and no overlap.
- **Week**: ISO week, Monday to Sunday, labelled ``YYYY-Www`` (ISO year).
- **Quarter**: three months of the month rule, labelled ``YYYYQn``.

Targets are set per month (``YYYY-MM``); ``prorate`` spreads a month's target over its working
days, so a period part-way through is compared with the share of the target that its elapsed
working days stand for. Pure: the calendar comes in as a value (``tasks.rules.calendar``).
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from tasks.rules.calendar import WorkCalendar

DEFAULT_CUTOFF_DAY = 25


class PeriodRule(StrEnum):
    CALENDAR = "calendar"
    SETTLEMENT = "settlement"


class CutoffShift(StrEnum):
    """Where a cut-off falling on a rest day moves to."""

    EARLIER = "earlier"  # the previous working day
    LATER = "later"  # the next working day


class PeriodError(ValueError):
    """A period policy or request that cannot give a period (e.g. a cut-off day of 31)."""


@dataclass(frozen=True)
class PeriodPolicy:
    rule: PeriodRule = PeriodRule.CALENDAR
    cutoff_day: int = DEFAULT_CUTOFF_DAY  # settlement months only
    shift: CutoffShift = CutoffShift.EARLIER

    def __post_init__(self) -> None:
        # Up to the 28th, so every month has its cut-off day (February included).
        if not 1 <= self.cutoff_day <= 28:
            raise PeriodError(f"cut-off day {self.cutoff_day}: must be between 1 and 28")


@dataclass(frozen=True, order=True)
class Period:
    """``start`` and ``end`` are inclusive. ``months`` are the target months (YYYY-MM) the
    period's targets come from: one for a month, three for a quarter; for a week, the month
    (by the policy's rule) its Sunday falls in."""

    start: date
    end: date
    label: str
    kind: str  # month | week | quarter
    months: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"period {self.label}: ends {self.end} before it starts {self.start}")

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def parse_month(key: str) -> tuple[int, int]:
    """``"2026-11"`` -> ``(2026, 11)``; anything else is a ``PeriodError``."""
    try:
        year_text, month_text = key.split("-")
        year, month = int(year_text), int(month_text)
    except ValueError:
        raise PeriodError(f"not a month {key!r} (expected YYYY-MM)") from None
    if len(year_text) != 4 or len(month_text) != 2 or not 1 <= month <= 12:
        raise PeriodError(f"not a month {key!r} (expected YYYY-MM)")
    return year, month


def add_months(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def cutoff(year: int, month: int, policy: PeriodPolicy, days: WorkCalendar) -> date:
    """The settlement cut-off of a month: its cut-off day, moved off a rest day by policy."""
    day = date(year, month, policy.cutoff_day)
    if days.is_working_day(day):
        return day
    if policy.shift is CutoffShift.EARLIER:
        return days.previous_working_day(day)
    return days.next_working_day(day)


def month_period(year: int, month: int, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The month ``year-month`` under ``policy``."""
    key = month_key(year, month)
    if policy.rule is PeriodRule.CALENDAR:
        last = _calendar.monthrange(year, month)[1]
        return Period(date(year, month, 1), date(year, month, last), key, "month", (key,))
    before = add_months(year, month, -1)
    start = cutoff(*before, policy, days) + timedelta(days=1)
    return Period(start, cutoff(year, month, policy, days), key, "month", (key,))


def month_containing(day: date, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The month period ``day`` belongs to (a settlement month may start in the month before
    and, with a later cut-off, end in the month after; with a cut-off on the 1st moved
    earlier, a day can even belong to the month after next)."""
    for delta in (0, 1, -1, 2, -2):
        year, month = add_months(day.year, day.month, delta)
        period = month_period(year, month, policy, days)
        if period.contains(day):
            return period
    raise PeriodError(f"no month period contains {day}")  # pragma: no cover - tiling holds


def previous_month(period: Period, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The month before a month period (MoM)."""
    year, month = parse_month(period.months[0])
    return month_period(*add_months(year, month, -1), policy, days)


def same_month_last_year(period: Period, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The same month a year earlier (YoY)."""
    year, month = parse_month(period.months[0])
    return month_period(year - 1, month, policy, days)


def week_containing(day: date, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The ISO week (Monday to Sunday) of ``day``; its target month is the month period its
    Sunday falls in."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    sunday = monday + timedelta(days=6)
    iso_year, iso_week, _ = day.isocalendar()
    month = month_containing(sunday, policy, days).months[0]
    return Period(monday, sunday, f"{iso_year:04d}-W{iso_week:02d}", "week", (month,))


def quarter_containing(day: date, policy: PeriodPolicy, days: WorkCalendar) -> Period:
    """The quarter of the month period ``day`` belongs to."""
    year, month = parse_month(month_containing(day, policy, days).months[0])
    first = (month - 1) // 3 * 3 + 1
    months = [month_period(year, first + i, policy, days) for i in range(3)]
    return Period(
        months[0].start,
        months[-1].end,
        f"{year:04d}Q{(first - 1) // 3 + 1}",
        "quarter",
        tuple(m.months[0] for m in months),
    )


def working_days(start: date, end: date, days: WorkCalendar) -> int:
    """Working days from ``start`` to ``end``, both included (0 when ``end`` < ``start``)."""
    count = 0
    day = start
    while day <= end:
        count += days.is_working_day(day)
        day += timedelta(days=1)
    return count


def elapsed_share(period: Period, through: date, days: WorkCalendar) -> tuple[int, int]:
    """(working days elapsed up to and including ``through``, working days of the period).
    A period without any working day counts calendar days instead, so its share still runs
    from 0 to 1."""
    last = min(through, period.end)
    total = working_days(period.start, period.end, days)
    if total == 0:
        return max(0, (last - period.start).days + 1), period.days
    return working_days(period.start, last, days), total


def prorate(target: int, period: Period, through: date, days: WorkCalendar) -> int:
    """The part of ``target`` due by the end of ``through``: the target times the share of the
    period's working days elapsed, rounded half up to a whole base unit (exact integers)."""
    return prorate_share(target, *elapsed_share(period, through, days))


def prorate_share(target: int, elapsed: int, total: int) -> int:
    """``target * elapsed / total`` rounded half up (``total`` > 0)."""
    if total <= 0:
        raise PeriodError("a pro-rating share needs a positive total")
    return (2 * target * elapsed + total) // (2 * total)
