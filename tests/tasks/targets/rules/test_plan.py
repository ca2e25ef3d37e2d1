"""Run plans: a monthly run covers the last complete month; a weekly run the month so far."""

from __future__ import annotations

from datetime import date

from tasks.rules.calendar import WorkCalendar
from tasks.targets.rules.periods import PeriodPolicy, PeriodRule
from tasks.targets.rules.plan import RunKind, Span, plan_run

DAYS = WorkCalendar()
SETTLEMENT = PeriodPolicy(PeriodRule.SETTLEMENT)


def test_monthly_covers_the_last_complete_month() -> None:
    plan = plan_run(RunKind.MONTHLY, date(2026, 12, 1), PeriodPolicy(), DAYS)
    assert plan.label == "2026-11" and plan.through == date(2026, 11, 30)
    assert plan.current == Span(date(2026, 11, 1), date(2026, 11, 30), "2026-11")
    assert plan.previous_month == Span(date(2026, 10, 1), date(2026, 10, 31), "2026-10")
    assert plan.previous_year == Span(date(2025, 11, 1), date(2025, 11, 30), "2025-11")
    assert plan.elapsed_working_days == plan.total_working_days == 21
    assert plan.current.year_start == date(2026, 1, 1)
    assert plan.previous_year.year_start == date(2025, 1, 1)
    # On the settlement cut-off's next day, the settlement month just closed.
    settled = plan_run(RunKind.MONTHLY, date(2026, 11, 26), SETTLEMENT, DAYS)
    assert settled.label == "2026-11"
    assert settled.current == Span(date(2026, 10, 24), date(2026, 11, 25), "2026-11")
    # An explicit month wins.
    assert plan_run(RunKind.MONTHLY, date(2026, 12, 1), PeriodPolicy(), DAYS, "2026-03").label == (
        "2026-03"
    )


def test_weekly_covers_the_month_through_yesterday() -> None:
    plan = plan_run(RunKind.WEEKLY, date(2026, 12, 6), PeriodPolicy(), DAYS)  # a Sunday
    assert plan.label == "2026-W49" and plan.month.label == "2026-12"
    assert plan.current == Span(date(2026, 12, 1), date(2026, 12, 5), "2026-12")
    assert plan.previous_month == Span(date(2026, 11, 1), date(2026, 11, 5), "2026-11")
    assert plan.previous_year == Span(date(2025, 12, 1), date(2025, 12, 5), "2025-12")
    assert (plan.elapsed_working_days, plan.total_working_days) == (4, 23)
    # Sunday the 1st: yesterday closed the month before, reported in full.
    first = plan_run(RunKind.WEEKLY, date(2026, 11, 1), PeriodPolicy(), DAYS)
    assert first.month.label == "2026-10" and first.current.end == date(2026, 10, 31)
    assert first.elapsed_working_days == first.total_working_days
    # February is shorter than January: the previous-month span is clipped to its end.
    march = plan_run(RunKind.WEEKLY, date(2026, 3, 31), PeriodPolicy(), DAYS)
    assert march.previous_month == Span(date(2026, 2, 1), date(2026, 2, 28), "2026-02")


def test_a_monthly_run_of_a_quarters_third_month_closes_the_quarter() -> None:
    december = plan_run(RunKind.MONTHLY, date(2027, 1, 1), PeriodPolicy(), DAYS)
    assert december.quarter is not None
    assert (december.quarter.label, december.quarter.start, december.quarter.end) == (
        "2026Q4",
        date(2026, 10, 1),
        date(2026, 12, 31),
    )
    assert plan_run(RunKind.MONTHLY, date(2026, 12, 1), PeriodPolicy(), DAYS).quarter is None
    assert plan_run(RunKind.WEEKLY, date(2027, 1, 3), PeriodPolicy(), DAYS).quarter is None
    # Settlement months: the quarter runs from October's start (after the September cut-off)
    # to the December cut-off.
    settled = plan_run(RunKind.MONTHLY, date(2026, 12, 28), SETTLEMENT, DAYS)
    assert settled.label == "2026-12" and settled.quarter is not None
    assert settled.quarter.end == settled.current.end
    assert settled.quarter.months == ("2026-10", "2026-11", "2026-12")
