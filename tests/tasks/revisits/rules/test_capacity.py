"""The capacity rule: a backlog spread over working days, earliest-overdue and A class first."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_db.enums import AbcClass, ContactChannel
from tasks.revisits.rules.capacity import (
    Capacity,
    Pending,
    backlog_order,
    deferred,
    plan_days,
    planned_day,
    window_days,
)
from tasks.rules.calendar import WorkCalendar

MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)
# Wednesday 2026-11-25 is a holiday; Saturday 2026-11-28 a make-up working day (调休).
CAL = WorkCalendar(exceptions={date(2026, 11, 25): False, date(2026, 11, 28): True})
VISIT, PHONE, EMAIL = ContactChannel.VISIT, ContactChannel.PHONE, ContactChannel.EMAIL


def _pending(
    rid: int,
    *,
    assignee: int = 1,
    channel: ContactChannel = VISIT,
    abc: AbcClass = AbcClass.A,
    since: date = date(2026, 10, 1),
    not_before: date = MONDAY,
) -> Pending:
    return Pending(rid, assignee, channel, abc, since, not_before)


def test_window_skips_holidays_and_takes_make_up_days() -> None:
    assert window_days(MONDAY, CAL, 5) == [
        MONDAY,
        date(2026, 11, 24),
        date(2026, 11, 26),
        FRIDAY,
        date(2026, 11, 28),
    ]
    # From a Sunday: the window starts on Monday.
    assert window_days(date(2026, 11, 22), CAL, 1) == [MONDAY]


def test_a_backlog_fills_days_up_to_capacity_by_kind() -> None:
    capacity = Capacity(visits_per_day=2, calls_per_day=3, window_working_days=10)
    items = [_pending(i) for i in range(5)] + [
        _pending(10 + i, channel=PHONE, abc=AbcClass.B) for i in range(4)
    ]
    plan = plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked={})
    days = {d.revisit_id: d.day for d in plan}
    assert [days[i] for i in range(5)] == [
        MONDAY,
        MONDAY,
        date(2026, 11, 24),
        date(2026, 11, 24),
        date(2026, 11, 26),  # Wednesday is a holiday
    ]
    assert [days[10 + i] for i in range(4)] == [MONDAY] * 3 + [date(2026, 11, 24)]
    assert not any(d.over_capacity for d in plan)
    assert deferred(plan, MONDAY) == 4


def test_earliest_overdue_then_a_class_first() -> None:
    capacity = Capacity(visits_per_day=1, calls_per_day=1, window_working_days=10)
    items = [
        _pending(1, abc=AbcClass.C, since=date(2026, 10, 5)),
        _pending(2, abc=AbcClass.B, since=date(2026, 10, 1)),
        _pending(3, abc=AbcClass.A, since=date(2026, 10, 1)),
        _pending(4, abc=AbcClass.A, since=date(2026, 9, 1)),
    ]
    plan = plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked={})
    order = [d.revisit_id for d in sorted(plan, key=lambda d: d.day)]
    assert order == [4, 3, 2, 1]
    assert sorted(items, key=backlog_order)[0].revisit_id == 4


def test_booked_days_count_and_managers_are_apart() -> None:
    capacity = Capacity(visits_per_day=2, calls_per_day=2, window_working_days=5)
    booked = {(1, VISIT, MONDAY): 2, (1, PHONE, MONDAY): 1}
    items = [_pending(1), _pending(2, channel=PHONE), _pending(3, assignee=2)]
    plan = {
        d.revisit_id: d.day
        for d in plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked=booked)
    }
    assert plan == {1: date(2026, 11, 24), 2: MONDAY, 3: MONDAY}


def test_care_emails_are_not_capacity_bound() -> None:
    capacity = Capacity(visits_per_day=1, calls_per_day=1, window_working_days=5)
    plan = plan_days(
        [_pending(1, channel=EMAIL, abc=AbcClass.C)],
        as_of=MONDAY,
        calendar=CAL,
        capacity=capacity,
        booked={},
    )
    assert plan == []
    assert capacity.per_day(EMAIL) is None


def test_never_before_its_due_date_nor_the_run_date() -> None:
    capacity = Capacity(visits_per_day=5, calls_per_day=5, window_working_days=5)
    items = [_pending(1, not_before=date(2026, 11, 22)), _pending(2, not_before=FRIDAY)]
    plan = {
        d.revisit_id: d.day
        for d in plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked={})
    }
    assert plan == {1: MONDAY, 2: FRIDAY}


def test_a_full_window_plans_over_capacity_on_its_least_booked_day() -> None:
    capacity = Capacity(visits_per_day=1, calls_per_day=1, window_working_days=2)
    booked = {(1, VISIT, MONDAY): 3}
    plan = plan_days(
        [_pending(i) for i in range(3)],
        as_of=MONDAY,
        calendar=CAL,
        capacity=capacity,
        booked=booked,
    )
    tuesday = date(2026, 11, 24)
    assert [(d.day, d.over_capacity) for d in plan] == [
        (tuesday, False),
        (tuesday, True),  # Tuesday has 1, Monday 3
        (tuesday, True),  # 2 against 3
    ]


def test_capacity_below_one_names_the_policy() -> None:
    with pytest.raises(ValueError, match="revisit.capacity.calls_per_day"):
        Capacity(calls_per_day=0)


def test_planned_day_is_the_due_date_without_a_plan() -> None:
    assert planned_day(MONDAY, None) == MONDAY
    assert planned_day(MONDAY, FRIDAY) == FRIDAY


_CLASSES = st.sampled_from(list(AbcClass))
_KINDS = st.sampled_from([VISIT, PHONE, EMAIL])


@st.composite
def _backlogs(
    draw: st.DrawFn,
) -> tuple[list[Pending], Capacity, dict[tuple[int, ContactChannel, date], int]]:
    capacity = Capacity(
        visits_per_day=draw(st.integers(1, 4)),
        calls_per_day=draw(st.integers(1, 6)),
        window_working_days=draw(st.integers(1, 15)),
    )
    n = draw(st.integers(0, 60))
    items = [
        Pending(
            revisit_id=i,
            assignee_id=draw(st.integers(1, 3)),
            channel=draw(_KINDS),
            abc_class=draw(_CLASSES),
            overdue_since=MONDAY - timedelta(days=draw(st.integers(0, 400))),
            not_before=MONDAY + timedelta(days=draw(st.integers(-3, 6))),
        )
        for i in range(n)
    ]
    booked = {
        (a, k, MONDAY + timedelta(days=d)): draw(st.integers(0, 3))
        for a in (1, 2)
        for k in (VISIT, PHONE)
        for d in draw(st.lists(st.integers(0, 10), max_size=4, unique=True))
    }
    return items, capacity, booked


@settings(max_examples=300, deadline=None)
@given(_backlogs())
def test_property_capacity_order_and_window(
    case: tuple[list[Pending], Capacity, dict[tuple[int, ContactChannel, date], int]],
) -> None:
    items, capacity, booked = case
    plan = plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked=booked)
    by_id = {item.revisit_id: item for item in items}
    # Every visit and call is planned, once; care emails never.
    assert sorted(d.revisit_id for d in plan) == sorted(
        i.revisit_id for i in items if i.channel is not EMAIL
    )
    load = Counter(booked)
    for d in plan:
        load[d.assignee_id, d.channel, d.day] += 1
    for d in plan:
        item = by_id[d.revisit_id]
        first = max(MONDAY, item.not_before)
        window = window_days(first, CAL, capacity.window_working_days)
        # Within the window: never before its due date or the run date, on a working day.
        assert d.day in window
        limit = capacity.per_day(d.channel)
        assert limit is not None
        if not d.over_capacity:
            # Never over capacity on a day it was planned without the flag ...
            planned_here = [
                p
                for p in plan
                if (p.assignee_id, p.channel, p.day) == (d.assignee_id, d.channel, d.day)
            ]
            assert (
                booked.get((d.assignee_id, d.channel, d.day), 0)
                + sum(1 for p in planned_here if not p.over_capacity)
                <= limit
            )
        else:
            # ... and over capacity only when every day of its window had been filled.
            assert all(load[d.assignee_id, d.channel, day] >= limit for day in window)
    # Order: of one manager's items of one kind and first day, an earlier one in backlog order
    # is never planned on a later day (unless it went over capacity).
    ordered = sorted(items, key=backlog_order)
    rank = {item.revisit_id: n for n, item in enumerate(ordered)}
    days = {d.revisit_id: d for d in plan}
    for a in plan:
        for b in plan:
            ia, ib = by_id[a.revisit_id], by_id[b.revisit_id]
            same = (ia.assignee_id, ia.channel, max(MONDAY, ia.not_before)) == (
                ib.assignee_id,
                ib.channel,
                max(MONDAY, ib.not_before),
            )
            if same and rank[a.revisit_id] < rank[b.revisit_id] and not b.over_capacity:
                assert days[a.revisit_id].day <= days[b.revisit_id].day


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.integers(1, 10), st.integers(1, 30))
def test_property_a_feasible_backlog_never_goes_over_capacity(
    n: int, per_day: int, window: int
) -> None:
    """When the window has room for the whole backlog, nothing goes over capacity and the
    backlog takes the fewest days it can."""
    capacity = Capacity(visits_per_day=per_day, calls_per_day=per_day, window_working_days=window)
    items = [_pending(i, since=MONDAY - timedelta(days=i % 50)) for i in range(n)]
    plan = plan_days(items, as_of=MONDAY, calendar=CAL, capacity=capacity, booked={})
    per = Counter(d.day for d in plan)
    if n <= per_day * window:
        assert not any(d.over_capacity for d in plan)
        assert max(per.values()) <= per_day
        assert len(per) == -(-n // per_day)
    else:
        assert sum(d.over_capacity for d in plan) == n - per_day * window
