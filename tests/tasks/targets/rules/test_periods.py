"""Period rules: calendar and settlement months tile the days, cut-offs move off rest days by
policy, ISO weeks, quarters, and pro-rating by working days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.rules.calendar import WorkCalendar
from tasks.targets.rules.periods import (
    CutoffShift,
    Period,
    PeriodError,
    PeriodPolicy,
    PeriodRule,
    add_months,
    cutoff,
    elapsed_share,
    month_containing,
    month_period,
    parse_month,
    previous_month,
    prorate,
    quarter_containing,
    same_month_last_year,
    week_containing,
    working_days,
)

WEEKDAYS = WorkCalendar()
# National Day 2026: Oct 1-7 off; Saturday Oct 10 a make-up working day (调休); and, to test a
# cut-off moving over a holiday, Monday Oct 26 off too.
HOLIDAYS = WorkCalendar(
    exceptions={
        **{date(2026, 10, d): False for d in range(1, 8)},
        date(2026, 10, 10): True,
        date(2026, 10, 26): False,
    }
)
CALENDAR = PeriodPolicy()
EARLIER = PeriodPolicy(PeriodRule.SETTLEMENT)
LATER = PeriodPolicy(PeriodRule.SETTLEMENT, shift=CutoffShift.LATER)
POLICIES = [CALENDAR, EARLIER, LATER, PeriodPolicy(PeriodRule.SETTLEMENT, cutoff_day=1)]


def test_calendar_month_is_the_whole_month() -> None:
    feb = month_period(2028, 2, CALENDAR, WEEKDAYS)
    assert (feb.start, feb.end, feb.label, feb.months) == (
        date(2028, 2, 1),
        date(2028, 2, 29),
        "2028-02",
        ("2028-02",),
    )


def test_settlement_month_runs_from_the_26th_to_the_25th_on_working_days() -> None:
    # Nov 25 2026 is a Wednesday; Oct 25 2026 a Sunday -> moved to Friday Oct 23.
    nov = month_period(2026, 11, EARLIER, WEEKDAYS)
    assert (nov.start, nov.end) == (date(2026, 10, 24), date(2026, 11, 25))
    oct_ = month_period(2026, 10, EARLIER, WEEKDAYS)
    assert oct_.end == date(2026, 10, 23)


def test_a_rest_day_cutoff_moves_later_by_policy_over_holidays() -> None:
    # Oct 25 is a Sunday and Monday Oct 26 a holiday here: later -> Tuesday Oct 27.
    assert cutoff(2026, 10, LATER, HOLIDAYS) == date(2026, 10, 27)
    assert cutoff(2026, 10, EARLIER, HOLIDAYS) == date(2026, 10, 23)
    nov = month_period(2026, 11, LATER, HOLIDAYS)
    assert nov.start == date(2026, 10, 28)
    # A cut-off on a make-up Saturday stays there (it is a working day).
    assert cutoff(2026, 10, PeriodPolicy(PeriodRule.SETTLEMENT, cutoff_day=10), HOLIDAYS) == date(
        2026, 10, 10
    )


def test_the_year_boundary_and_january() -> None:
    jan = month_period(2027, 1, EARLIER, WEEKDAYS)
    # Dec 25 2026 is a Friday; Jan 25 2027 a Monday.
    assert (jan.start, jan.end) == (date(2026, 12, 26), date(2027, 1, 25))
    assert month_containing(date(2026, 12, 31), EARLIER, WEEKDAYS).label == "2027-01"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: f"{p.rule}-{p.cutoff_day}-{p.shift}")
@pytest.mark.parametrize("days", [WEEKDAYS, HOLIDAYS], ids=["weekdays", "holidays"])
def test_months_tile_every_day_exactly_once(policy: PeriodPolicy, days: WorkCalendar) -> None:
    periods = [month_period(*add_months(2025, 1, i), policy, days) for i in range(36)]
    for before, after in zip(periods, periods[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)
    day = periods[1].start
    while day <= periods[-2].end:
        found = month_containing(day, policy, days)
        assert found.contains(day)
        assert sum(p.contains(day) for p in periods) == 1
        day += timedelta(days=1)
    if policy.rule is PeriodRule.SETTLEMENT:
        assert all(days.is_working_day(p.end) for p in periods)


@given(
    st.dates(date(2000, 1, 1), date(2100, 12, 31)),
    st.integers(1, 28),
    st.sampled_from(list(CutoffShift)),
)
def test_any_day_any_cutoff_falls_in_one_settlement_month(
    day: date, cutoff_day: int, shift: CutoffShift
) -> None:
    policy = PeriodPolicy(PeriodRule.SETTLEMENT, cutoff_day, shift)
    period = month_containing(day, policy, WEEKDAYS)
    assert period.contains(day)
    year, month = parse_month(period.label)
    # The month is named after the month of its cut-off (±1 day of moving).
    assert abs((period.end - date(year, month, cutoff_day)).days) <= 2
    assert previous_month(period, policy, WEEKDAYS).end == period.start - timedelta(days=1)


def test_cutoff_day_out_of_range_is_refused() -> None:
    with pytest.raises(PeriodError, match="between 1 and 28"):
        PeriodPolicy(PeriodRule.SETTLEMENT, cutoff_day=31)
    with pytest.raises(PeriodError, match="not a month"):
        parse_month("2026-13")
    with pytest.raises(PeriodError, match="not a month"):
        parse_month("26-1")
    with pytest.raises(PeriodError, match="before it starts"):
        Period(date(2026, 1, 2), date(2026, 1, 1), "x", "month", ())


def test_week_is_monday_to_sunday_with_iso_labels() -> None:
    week = week_containing(date(2026, 12, 6), CALENDAR, WEEKDAYS)  # a Sunday
    assert (week.start, week.end, week.label, week.months) == (
        date(2026, 11, 30),
        date(2026, 12, 6),
        "2026-W49",
        ("2026-12",),
    )
    # Jan 1 2027 is a Friday of ISO week 53 of 2026; its Sunday is in January.
    first = week_containing(date(2027, 1, 1), CALENDAR, WEEKDAYS)
    assert first.label == "2026-W53" and first.months == ("2027-01",)
    # Under settlement months the Sunday Nov 29 2026 is already in December's period.
    assert week_containing(date(2026, 11, 27), EARLIER, WEEKDAYS).months == ("2026-12",)
    for offset in range(7):
        assert (
            week_containing(date(2026, 11, 30) + timedelta(days=offset), CALENDAR, WEEKDAYS) == week
        )


def test_quarter_is_three_months_of_the_rule() -> None:
    q4 = quarter_containing(date(2026, 11, 15), CALENDAR, WEEKDAYS)
    assert (q4.start, q4.end, q4.label, q4.months) == (
        date(2026, 10, 1),
        date(2026, 12, 31),
        "2026Q4",
        ("2026-10", "2026-11", "2026-12"),
    )
    settled = quarter_containing(date(2026, 12, 28), EARLIER, WEEKDAYS)  # January's period
    assert settled.label == "2027Q1" and settled.start == date(2026, 12, 26)


def test_mom_and_yoy_periods() -> None:
    nov = month_period(2026, 11, EARLIER, WEEKDAYS)
    assert previous_month(nov, EARLIER, WEEKDAYS).label == "2026-10"
    last_year = same_month_last_year(nov, EARLIER, WEEKDAYS)
    assert last_year.label == "2025-11" and last_year.end == date(2025, 11, 25)


def test_working_days_and_prorating() -> None:
    oct_ = month_period(2026, 10, CALENDAR, HOLIDAYS)
    # 22 weekdays in October 2026, minus 5 holiday weekdays and Monday the 26th, plus Sat 10th.
    assert working_days(oct_.start, oct_.end, HOLIDAYS) == 17
    assert elapsed_share(oct_, date(2026, 10, 7), HOLIDAYS) == (0, 17)
    assert prorate(1_000, oct_, date(2026, 10, 7), HOLIDAYS) == 0
    assert elapsed_share(oct_, date(2026, 10, 10), HOLIDAYS) == (3, 17)  # Oct 8, 9, 10
    assert prorate(1_700, oct_, date(2026, 10, 10), HOLIDAYS) == 300
    assert prorate(1_000, oct_, date(2026, 10, 10), HOLIDAYS) == 176  # 176.47 rounds down
    assert prorate(1_000, oct_, date(2026, 9, 30), HOLIDAYS) == 0  # before the period
    assert prorate(1_000, oct_, date(2026, 12, 1), HOLIDAYS) == 1_000  # past its end
    assert prorate(1, oct_, date(2026, 10, 22), HOLIDAYS) == 1  # 0.53 rounds half up


def test_a_period_without_working_days_prorates_by_calendar_days() -> None:
    closed = WorkCalendar(working_weekdays=frozenset())
    week = Period(date(2026, 11, 30), date(2026, 12, 6), "w", "week", ("2026-12",))
    assert elapsed_share(week, date(2026, 12, 2), closed) == (3, 7)
    assert prorate(700, week, date(2026, 12, 2), closed) == 300


@given(
    st.integers(0, 10**15),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
)
def test_prorate_is_monotone_and_bounded(target: int, through: date) -> None:
    month = month_containing(through, CALENDAR, HOLIDAYS)
    share = prorate(target, month, through, HOLIDAYS)
    assert 0 <= share <= target
    assert share <= prorate(target, month, through + timedelta(days=1), HOLIDAYS)
    elapsed, total = elapsed_share(month, through, HOLIDAYS)
    assert abs(share * total - target * elapsed) * 2 <= total  # the nearest whole unit
