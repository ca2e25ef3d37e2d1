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
