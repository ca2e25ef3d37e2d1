from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.rules.calendar import CalendarError, WorkCalendar

# 2026 National Day week: 1-7 Oct off, Sunday 27 Sep and Saturday 10 Oct are make-up workdays.
NATIONAL_DAY = {date(2026, 10, d): False for d in range(1, 8)} | {
    date(2026, 9, 27): True,
    date(2026, 10, 10): True,
}
CAL = WorkCalendar(exceptions=NATIONAL_DAY)


def test_weekends_and_holidays() -> None:
    assert CAL.is_working_day(date(2026, 11, 23))  # Monday
    assert not CAL.is_working_day(date(2026, 11, 22))  # Sunday
    assert not CAL.is_working_day(date(2026, 10, 1))  # holiday on a Thursday
    assert CAL.is_working_day(date(2026, 10, 10))  # make-up Saturday


def test_next_and_previous_working_day() -> None:
    assert CAL.next_working_day(date(2026, 9, 30)) == date(2026, 9, 30)
    assert CAL.next_working_day(date(2026, 10, 1)) == date(2026, 10, 8)
    assert CAL.previous_working_day(date(2026, 10, 7)) == date(2026, 9, 30)
    assert CAL.previous_working_day(date(2026, 11, 22)) == date(2026, 11, 20)


def test_always_open_and_from_pattern() -> None:
    assert WorkCalendar.always_open().is_working_day(date(2026, 11, 22))
    six_day = WorkCalendar.from_pattern("123456", {})
    assert six_day.is_working_day(date(2026, 11, 21))


def test_calendar_without_working_days_fails_clearly() -> None:
    with pytest.raises(CalendarError):
        WorkCalendar(working_weekdays=frozenset()).next_working_day(date(2026, 1, 1))


@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)))
def test_next_working_day_is_working_and_nearest(day: date) -> None:
    nxt = CAL.next_working_day(day)
    assert CAL.is_working_day(nxt) and nxt >= day
    assert all(not CAL.is_working_day(day + timedelta(d)) for d in range((nxt - day).days))


def test_coverage_warning_fires_within_60_days_and_past_the_end() -> None:
    from tasks.rules.calendar import coverage_warning

    end = date(2026, 12, 31)
    assert coverage_warning(date(2026, 10, 1), end) is None  # 91 days left
    assert coverage_warning(date(2026, 10, 31), end) is None  # 61 days left: the last quiet day
    assert coverage_warning(date(2026, 11, 1), end) is not None  # 60 days: within the window
    soon = coverage_warning(date(2026, 12, 7), end, calendar="CN")  # the demo's today
    assert soon is not None
    assert "calendar CN" in soon and "2026-12-31 (24 days after 2026-12-07)" in soon
    assert "upgrade chinesecalendar and run `crm calendar sync`" in soon
    assert "add the days by hand" in soon
    assert coverage_warning(date(2026, 11, 2), end) is not None  # 59 days
    assert coverage_warning(end, end) is not None
    past = coverage_warning(date(2027, 1, 5), end, calendar="CN-SZ")
    assert past is not None and "calendar CN-SZ" in past and "5 days before 2027-01-05" in past
    assert "plain weekdays" in past
    never = coverage_warning(date(2026, 12, 7), None, calendar="CN")
    assert never is not None and "no public holidays loaded" in never
    assert coverage_warning(date(2026, 12, 7), end, window_days=10) is None
