"""Business minutes against a minute-by-minute brute force, plus the documented edge cases.

The brute force knows nothing of the implementation: it lays out every UTC minute of a window,
reads each one's local wall clock (the stdlib's zoneinfo, per UTC hour), applies the documented
rule "a wall time's instant is the earliest minute whose clock reads it or later" with a
running maximum, and marks each minute working or not. Answers are then counts of marked
minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_db.calendar_sync import package_calendar
from tasks.rules.business_time import (
    BusinessHours,
    BusinessHoursError,
    add_business_minutes,
    business_minutes_between,
    local_instant,
    working_minutes_on,
)
from tasks.rules.calendar import CalendarError, WorkCalendar

WINDOW_START = datetime(2025, 12, 1, tzinfo=UTC)
WINDOW_DAYS = 430  # to 2027-02-04: year ends, month ends, both 2026 DST switches, 春节 2026
SHANGHAI, BERLIN, NEW_YORK = (
    ZoneInfo("Asia/Shanghai"),
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
)
CN_DAYS = {d: v.is_working for d, v in package_calendar().days.items()}
# Berlin: Sunday is a working day (so both DST nights count), Saturday is not, Christmas off, and
# one Saturday made a working day.
DE_DAYS = {date(2026, 12, 25): False, date(2026, 12, 26): False, date(2027, 1, 1): False}
DE_DAYS[date(2026, 3, 28)] = True
# New York: Monday-Friday, the two DST Sundays made working days.
US_DAYS = {date(2026, 3, 8): True, date(2026, 11, 1): True, date(2026, 11, 26): False}

CALENDARS: dict[str, BusinessHours] = {
    "cn-break": BusinessHours(
        WorkCalendar.from_pattern("12345", CN_DAYS), SHANGHAI, time(9), time(18), time(12), time(13)
    ),
    "cn-plain": BusinessHours(WorkCalendar.from_pattern("12345", CN_DAYS), SHANGHAI),
    "berlin-night": BusinessHours(  # hours and break straddle both DST switches (02:00-03:00)
        WorkCalendar.from_pattern("123457", DE_DAYS),
        BERLIN,
        time(1, 30),
        time(3, 30),
        time(2, 15),
        time(2, 40),
    ),
    "berlin-day-to-midnight": BusinessHours(
        WorkCalendar.from_pattern("123457", DE_DAYS), BERLIN, time(0), time(0)
    ),
    "ny-night": BusinessHours(  # 01:00-02:00 repeats in November, 02:00-03:00 is skipped in March
        WorkCalendar.from_pattern("12345", US_DAYS),
        NEW_YORK,
        time(0, 30),
        time(4),
        time(1, 30),
        time(2, 30),
    ),
    "ny-office": BusinessHours(
        WorkCalendar.from_pattern("12345", US_DAYS), NEW_YORK, time(8), time(17)
    ),
    "24x7-berlin": BusinessHours.twenty_four_seven(BERLIN),
}
NAMES = sorted(CALENDARS)

# Places where mistakes hide: DST nights, year and month ends, 春节 2026, National Day.
HOT_SPOTS = [
    datetime(2026, 3, 8, 6, tzinfo=UTC),
    datetime(2026, 3, 29, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 5, tzinfo=UTC),
    datetime(2025, 12, 31, 15, tzinfo=UTC),
    datetime(2026, 12, 31, 15, tzinfo=UTC),
    datetime(2026, 1, 31, 16, tzinfo=UTC),
    datetime(2026, 2, 28, 16, tzinfo=UTC),
    datetime(2026, 2, 13, 8, tzinfo=UTC),
    datetime(2026, 9, 30, 8, tzinfo=UTC),
]


@dataclass(frozen=True)
class Oracle:
    cumulative: npt.NDArray[np.int64]  # cumulative[i] = working minutes in minutes [0, i)

    def between(self, i: int, j: int) -> int:
        return int(self.cumulative[j] - self.cumulative[i])

    def add(self, i: int, minutes: int) -> int | None:
        if minutes == 0:
            return i
        k = int(np.searchsorted(self.cumulative, self.cumulative[i] + minutes, side="left"))
        return k if k < len(self.cumulative) else None


def _wall_clock_minutes(zone: ZoneInfo, n: int) -> npt.NDArray[np.datetime64]:
    """The local wall-clock reading of each of the window's ``n`` UTC minutes (naive
    datetime64[m]). zoneinfo gives the offset once per UTC hour - these zones change offset only
    on whole hours, which is checked at each hour's first and last minute."""
    hours = n // 60
    offsets = np.empty(hours, dtype="timedelta64[m]")
    for h in range(hours):
        start = WINDOW_START + timedelta(hours=h)
        offset = start.astimezone(zone).utcoffset()
        assert offset == (start + timedelta(minutes=59)).astimezone(zone).utcoffset()
        assert offset is not None
        offsets[h] = np.timedelta64(int(offset / timedelta(minutes=1)), "m")
    utc = np.datetime64(WINDOW_START.replace(tzinfo=None), "m") + np.arange(n).astype(
        "timedelta64[m]"
    )
    return utc + np.repeat(offsets, 60)


@cache
def oracle(name: str) -> Oracle:
    hours = CALENDARS[name]
    n = WINDOW_DAYS * 24 * 60
    wall = _wall_clock_minutes(hours.zone, n)
    running = np.maximum.accumulate(wall)  # monotone: first index reading >= t is a searchsorted
    work = np.zeros(n + 1, dtype=np.int64)
    first_day = (WINDOW_START - timedelta(days=1)).date()
    for offset in range(WINDOW_DAYS + 2):
        day = first_day + timedelta(days=offset)
        if not hours.days.is_working_day(day):
            continue
        midnight = np.datetime64(datetime(day.year, day.month, day.day))
        for seg_start, seg_end in hours.segments:
            a = np.searchsorted(running, midnight + np.timedelta64(seg_start), side="left")
            b = np.searchsorted(running, midnight + np.timedelta64(seg_end), side="left")
            if a < b:
                work[a] += 1
                work[b] -= 1
    marked = np.cumsum(work)[:n]
    cumulative = np.concatenate([[0], np.cumsum(marked)])
    return Oracle(cumulative.astype(np.int64))


def _at(i: int) -> datetime:
    return WINDOW_START + timedelta(minutes=i)


LAST = WINDOW_DAYS * 24 * 60 - 1
SPAN = 15_000  # ~10 days: a holiday week and the weekends around it


# Hot spots get their own (dense) range of starts, the rest of the window a uniform one; one
# integer draw either way keeps hypothesis' own cost per case small.
HOT_STARTS = [int((spot - WINDOW_START) / timedelta(minutes=1)) - 3 * 1440 for spot in HOT_SPOTS]
HOT_WIDTH = 6 * 1440


def _start(choice: int) -> int:
    """``choice`` below len(HOT_SPOTS) * HOT_WIDTH: near a hot spot; above: anywhere."""
    spot, offset = divmod(choice, HOT_WIDTH)
    if spot < len(HOT_STARTS):
        return HOT_STARTS[spot] + offset
    return choice - len(HOT_STARTS) * HOT_WIDTH


def start_index() -> st.SearchStrategy[int]:
    return st.integers(0, len(HOT_STARTS) * HOT_WIDTH * 2).map(
        lambda choice: _start(choice) % (LAST - SPAN)
    )


ZONES = (UTC, SHANGHAI, NEW_YORK)


@settings(max_examples=10_000, derandomize=True, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    i=start_index(),
    span=st.integers(0, SPAN),
    minutes=st.integers(0, 6_000),
)
def test_matches_the_minute_by_minute_brute_force(
    name: str, i: int, span: int, minutes: int
) -> None:
    hours, truth = CALENDARS[name], oracle(name)
    zone = ZONES[(i + minutes) % 3]
    start = _at(i).astimezone(zone)  # the caller's zone must not matter
    assert business_minutes_between(start, _at(i + span), hours) == truth.between(i, i + span)
    # Short targets (up to 3 working days) are the common SLA: test them as often as long ones.
    for target in (minutes % (3 * 540 + 1), minutes):
        k = truth.add(i, target)
        if k is not None:
            result = add_business_minutes(start, target, hours)
            # Compared in UTC: Python never finds a time in a fall-back repeat (fold=1) equal
            # to one in another zone (PEP 495), although it is the same instant.
            assert result.astimezone(UTC) == _at(k)
            assert result.tzinfo is zone


@settings(max_examples=1_000, derandomize=True, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    i=start_index(),
    seconds=st.integers(0, 59),
    minutes=st.integers(0, 5_000),
)
def test_add_then_between_round_trips_also_off_the_minute(
    name: str, i: int, seconds: int, minutes: int
) -> None:
    hours = CALENDARS[name]
    start = _at(i) + timedelta(seconds=seconds)
    end = add_business_minutes(start, minutes, hours)
    assert end >= start
    assert business_minutes_between(start, end, hours) == minutes
    # The earliest such instant: a second earlier is not enough.
    if minutes:
        assert business_minutes_between(start, end - timedelta(seconds=1), hours) == minutes - 1
        assert business_minutes_between(end, start, hours) == -minutes


@settings(max_examples=1_000, derandomize=True, deadline=None)
@given(name=st.sampled_from(NAMES), i=start_index(), a=st.integers(0, 9000), b=st.integers(0, 9000))
def test_adding_in_two_steps_equals_adding_once(name: str, i: int, a: int, b: int) -> None:
    hours = CALENDARS[name]
    start = _at(i)
    assert add_business_minutes(add_business_minutes(start, a, hours), b, hours) == (
        add_business_minutes(start, a + b, hours)
    )


CN = CALENDARS["cn-break"]


def _sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_documented_edges() -> None:
    # A start outside the hours counts from the next opening (Friday evening -> Monday 09:00).
    assert add_business_minutes(_sh(2026, 11, 20, 19), 30, CN) == _sh(2026, 11, 23, 9, 30)
    # Landing exactly on the end of an interval stays there: 18:00, and 12:00 at the break.
    assert add_business_minutes(_sh(2026, 11, 23, 17), 60, CN) == _sh(2026, 11, 23, 18)
    assert add_business_minutes(_sh(2026, 11, 23, 11), 60, CN) == _sh(2026, 11, 23, 12)
    assert add_business_minutes(_sh(2026, 11, 23, 11), 61, CN) == _sh(2026, 11, 23, 13, 1)
    # Zero minutes is the start itself, even on a holiday.
    assert add_business_minutes(_sh(2026, 10, 1, 3), 0, CN) == _sh(2026, 10, 1, 3)
    # National Day (1-7 October 2026) is skipped; the make-up Saturday 2026-10-10 is worked.
    assert add_business_minutes(_sh(2026, 9, 30, 17), 120, CN) == _sh(2026, 10, 8, 10)
    assert add_business_minutes(_sh(2026, 10, 9, 17), 120, CN) == _sh(2026, 10, 10, 10)
    assert business_minutes_between(_sh(2026, 9, 30, 9), _sh(2026, 10, 12, 9), CN) == 4 * 480
    # Seconds count and the result is floored.
    assert business_minutes_between(_sh(2026, 11, 23, 9, 0, 30), _sh(2026, 11, 23, 9, 2), CN) == 1
    assert working_minutes_on(date(2026, 11, 23), CN) == 480
    assert working_minutes_on(date(2026, 10, 1), CN) == 0


def test_dst_days_are_real_elapsed_time() -> None:
    midnight_cal = CALENDARS["berlin-day-to-midnight"]
    assert working_minutes_on(date(2026, 3, 29), midnight_cal) == 23 * 60
    assert working_minutes_on(date(2026, 10, 25), midnight_cal) == 25 * 60
    night = CALENDARS["berlin-night"]
    # 29 March: 02:00-03:00 does not exist: 01:30-02:15 is 30 real minutes (the jump at
    # 02:00), the break ends at 02:40 = the jump, 02:40-03:30 is 30 minutes.
    assert working_minutes_on(date(2026, 3, 29), night) == 30 + 30
    # 25 October: 02:00-03:00 happens twice; each wall time is its first occurrence, so the
    # second segment runs from the first 02:40 to 03:30 (after the repeat): 110 minutes.
    assert working_minutes_on(date(2026, 10, 25), night) == 45 + 110
    jump = datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST
    assert local_instant(datetime(2026, 3, 29, 2, 30), BERLIN) == jump
    first = local_instant(datetime(2026, 10, 25, 2, 30), BERLIN)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET
    ny = CALENDARS["ny-office"]
    friday, monday = (
        datetime(2026, 3, 6, 16, tzinfo=NEW_YORK),
        datetime(2026, 3, 9, 9, tzinfo=NEW_YORK),
    )
    assert business_minutes_between(friday, monday, ny) == 60 + 9 * 60 + 60  # Sunday worked


def test_twenty_four_seven_is_elapsed_time() -> None:
    clock = BusinessHours.twenty_four_seven(BERLIN)
    start = datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert add_business_minutes(start, 1440, clock) == start + timedelta(days=1)
    assert business_minutes_between(start, start + timedelta(hours=30), clock) == 30 * 60


def test_invalid_hours_and_arguments_are_refused() -> None:
    week = WorkCalendar()
    with pytest.raises(BusinessHoursError, match="not after"):
        BusinessHours(week, SHANGHAI, time(18), time(9))
    with pytest.raises(BusinessHoursError, match="inside"):
        BusinessHours(week, SHANGHAI, time(9), time(18), time(8), time(10))
    with pytest.raises(BusinessHoursError, match="together"):
        BusinessHours(week, SHANGHAI, time(9), time(18), time(12), None)
    with pytest.raises(ValueError, match="aware"):
        add_business_minutes(datetime(2026, 1, 5, 9), 5, CN)
    with pytest.raises(ValueError, match="negative"):
        add_business_minutes(_sh(2026, 1, 5, 9), -1, CN)
    closed = BusinessHours(WorkCalendar(working_weekdays=frozenset()), SHANGHAI)
    with pytest.raises(CalendarError):
        add_business_minutes(_sh(2026, 1, 5, 9), 1, closed)
