"""Survey periods, campaign codes and the spreading of a wave over a period's working days."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest

from crm_db.enums import AbcClass, SurveyPeriod
from tasks.rules.calendar import WorkCalendar
from tasks.surveys.rules.periods import (
    add_working_days,
    due_bound,
    period_of,
    periodic_campaign_code,
    post_complaint_campaign,
    spread_day,
    spread_hash,
    spread_index,
    working_days,
)

# 2026 National Day week (Oct 1-7 off, Sep 27 and Oct 10 make-up working Saturdays/Sunday).
CN = WorkCalendar.from_pattern(
    "12345",
    {
        **{date(2026, 10, d): False for d in range(1, 8)},
        date(2026, 9, 27): True,
        date(2026, 10, 10): True,
    },
)


@pytest.mark.parametrize(
    ("day", "period", "code", "start", "end"),
    [
        (date(2026, 11, 23), SurveyPeriod.QUARTER, "2026Q4", date(2026, 10, 1), date(2026, 12, 31)),
        (date(2026, 1, 1), SurveyPeriod.QUARTER, "2026Q1", date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 6, 30), SurveyPeriod.QUARTER, "2026Q2", date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 6, 30), SurveyPeriod.HALF_YEAR, "2026H1", date(2026, 1, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), SurveyPeriod.HALF_YEAR, "2026H2", date(2026, 7, 1), date(2026, 12, 31)),
        (date(2028, 2, 29), SurveyPeriod.YEAR, "2028", date(2028, 1, 1), date(2028, 12, 31)),
    ],
)
def test_period_of(day: date, period: SurveyPeriod, code: str, start: date, end: date) -> None:
    result = period_of(day, period)
    assert (result.code, result.start, result.end) == (code, start, end)


def test_every_day_of_four_years_lies_in_its_period_and_periods_tile() -> None:
    for kind in SurveyPeriod:
        day = date(2025, 1, 1)
        previous = None
        while day < date(2029, 1, 1):
            p = period_of(day, kind)
            assert p.start <= day <= p.end
            if previous is not None and previous.code != p.code:
                assert p.start == previous.end + timedelta(days=1)
            previous = p
            day += timedelta(days=1)


def test_campaign_codes() -> None:
    assert periodic_campaign_code(
        period_of(date(2026, 11, 23), SurveyPeriod.QUARTER), AbcClass.A
    ) == ("nps:2026Q4:A")
    assert post_complaint_campaign(date(2026, 12, 7)) == ("csat:2026-12", "2026-12")


def test_working_days_skip_holidays_and_keep_make_up_days() -> None:
    days = working_days(period_of(date(2026, 10, 15), SurveyPeriod.QUARTER), CN)
    assert date(2026, 10, 5) not in days and date(2026, 10, 10) in days
    assert all(CN.is_working_day(d) for d in days)
    # From a start: the days left; a start outside the period is clamped into it.
    q4 = period_of(date(2026, 10, 15), SurveyPeriod.QUARTER)
    assert working_days(q4, CN, date(2026, 12, 30)) == [date(2026, 12, 30), date(2026, 12, 31)]
    assert working_days(q4, CN, date(2027, 3, 1)) == [date(2026, 12, 31)]
    assert working_days(q4, CN, date(2026, 1, 1)) == days
    # A calendar without any working day still gives the wave somewhere to go.
    never = WorkCalendar(working_weekdays=frozenset())
    assert len(working_days(period_of(date(2026, 2, 3), SurveyPeriod.QUARTER), never)) == 90


def test_spread_is_even_and_deterministic() -> None:
    days = working_days(period_of(date(2026, 11, 1), SurveyPeriod.QUARTER), CN)
    per_day = Counter(spread_day(c, days) for c in range(1, 100_001))
    assert set(per_day) == set(days)
    mean = 100_000 / len(days)
    assert max(per_day.values()) < mean * 1.05 and min(per_day.values()) > mean * 0.95
    assert [spread_day(c, days) for c in (1, 2, 3)] == [spread_day(c, days) for c in (1, 2, 3)]
    # Consecutive ids land on different days (a branch's customers are not invited together).
    assert len({spread_index(c, len(days)) for c in range(1, 11)}) == 10


def test_due_bound_selects_exactly_the_customers_whose_day_has_come() -> None:
    period = period_of(date(2026, 10, 1), SurveyPeriod.QUARTER)
    days = working_days(period, CN)
    customers = range(1, 3001)
    day = period.start - timedelta(days=1)
    while day <= period.end + timedelta(days=1):
        bound = due_bound(day, days)
        by_hash = {c for c in customers if spread_hash(c) < bound}
        by_day = {c for c in customers if spread_day(c, days) <= day}
        assert by_hash == by_day, day
        day += timedelta(days=1)
    assert due_bound(period.end, days) == 1 << 32  # everyone by the last day


def test_spread_rejects_an_empty_period() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        spread_index(1, 0)


@pytest.mark.parametrize(
    ("resolved", "count", "due"),
    [
        (date(2026, 11, 23), 3, date(2026, 11, 26)),  # Monday -> Thursday
        (date(2026, 11, 27), 3, date(2026, 12, 2)),  # Friday -> Wednesday
        (date(2026, 11, 28), 3, date(2026, 12, 2)),  # Saturday -> Wednesday
        (date(2026, 9, 29), 3, date(2026, 10, 9)),  # over the National Day week
        (date(2026, 10, 8), 2, date(2026, 10, 10)),  # a make-up Saturday counts
        (date(2026, 11, 28), 0, date(2026, 11, 28)),
    ],
)
def test_add_working_days(resolved: date, count: int, due: date) -> None:
    assert add_working_days(resolved, count, CN) == due


def test_add_working_days_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_working_days(date(2026, 1, 1), -1, CN)
