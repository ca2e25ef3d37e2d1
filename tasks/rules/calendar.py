"""Business calendar rules: which days are working days, and where a due date moves to.

Pure: the calendar's data (weekly pattern + dated exceptions such as public holidays and the
make-up workdays of the Chinese schedule, 调休) comes in as values, never from a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

# A calendar with no working day at all would make "next working day" loop forever.
MAX_SEARCH_DAYS = 366


class CalendarError(ValueError):
    """The calendar has no working day within a year of the date asked about."""


@dataclass(frozen=True)
class WorkCalendar:
    working_weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday = 1
    exceptions: Mapping[date, bool] = field(default_factory=dict)  # day -> is it a working day

    @classmethod
    def always_open(cls) -> WorkCalendar:
        """The 24x7 calendar."""
        return cls(working_weekdays=frozenset(range(1, 8)))

    @classmethod
    def from_pattern(cls, weekdays: str, exceptions: Mapping[date, bool]) -> WorkCalendar:
        """``weekdays`` as stored in ``business_calendars.working_weekdays``, e.g. "12345"."""
        return cls(frozenset(int(ch) for ch in weekdays), dict(exceptions))

    def is_working_day(self, day: date) -> bool:
        if day in self.exceptions:
            return self.exceptions[day]
        return day.isoweekday() in self.working_weekdays

    def next_working_day(self, day: date) -> date:
        """``day`` itself if it is a working day, otherwise the first working day after it."""
        for offset in range(MAX_SEARCH_DAYS + 1):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise CalendarError(f"no working day within {MAX_SEARCH_DAYS} days after {day}")

    def previous_working_day(self, day: date) -> date:
        """``day`` itself if it is a working day, otherwise the last working day before it."""
        for offset in range(MAX_SEARCH_DAYS + 1):
            candidate = day - timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise CalendarError(f"no working day within {MAX_SEARCH_DAYS} days before {day}")


# Two months: long enough to upgrade a package and sync before the first day that would be
# treated as an ordinary weekday (the State Council publishes next year's schedule in November).
COVERAGE_WINDOW_DAYS = 60


def coverage_warning(
    as_of: date,
    last_covered_day: date | None,
    *,
    calendar: str = "CN",
    window_days: int = COVERAGE_WINDOW_DAYS,
) -> str | None:
    """A warning when ``as_of`` is within ``window_days`` of the calendar's last day with known
    public holidays (or past it, or when none were ever loaded); ``None`` when all is well.

    Past that day every date follows the weekly pattern: holidays would be planned as working
    days and make-up Saturdays as days off, silently.
    """
    fix = (
        "upgrade chinesecalendar and run `crm calendar sync`, or add the days by hand to "
        "calendar_days and set business_calendars.covered_through"
    )
    if last_covered_day is None:
        return f"calendar {calendar} has no public holidays loaded: {fix}"
    left = (last_covered_day - as_of).days
    if left < 0:
        return (
            f"calendar {calendar} knows public holidays only up to "
            f"{last_covered_day.isoformat()}, {-left} days before {as_of.isoformat()}: days "
            f"since then count as plain weekdays; {fix}"
        )
    if left <= window_days:
        return (
            f"calendar {calendar} knows public holidays only up to "
            f"{last_covered_day.isoformat()} ({left} days after {as_of.isoformat()}): {fix}"
        )
    return None


def calendar_warnings(as_of: date, coverage: Mapping[str, date | None]) -> list[str]:
    """One warning per calendar whose public holidays end within 60 days of ``as_of`` (or
    before it, or were never loaded); ``coverage`` is the last covered day per calendar."""
    found = (coverage_warning(as_of, last, calendar=code) for code, last in coverage.items())
    return [text for text in found if text is not None]
