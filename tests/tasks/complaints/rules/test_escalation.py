"""Complaint escalation rules: thresholds on both clocks, each tier once, next_check_at exact."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.complaints.rules.escalation import (
    FIRST_RESPONSE,
    RESOLUTION,
    ClockInput,
    Thresholds,
    due_tiers,
    elapsed_minutes,
    ladder_for,
    next_check_at,
    tier_due_at,
    tier_minutes,
)
from tasks.rules.business_time import BusinessHours
from tasks.rules.calendar import WorkCalendar
from tasks.rules.escalation_ladder import Org, Person, Posts, Progress

SH = ZoneInfo("Asia/Shanghai")
HOURS = BusinessHours(WorkCalendar(), SH, time(9), time(18), code="CN")
ORG = Org(
    {
        1: Person(1, True, True, manager_id=2),
        2: Person(2, True, True, manager_id=3),
        3: Person(3, True, True, manager_id=100),
        100: Person(100, True, True, role="executive"),
    },
    (100,),
)
POSTS = Posts(assignee_id=1, branch_manager_id=2, region_manager_id=3)
# Monday 2026-11-23 10:00 Shanghai.
RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=SH)


def _clock(**overrides: object) -> ClockInput:
    values: dict[str, object] = {
        "received_at": RECEIVED,
        "status": "new",
        "first_response_minutes": 24 * 60,
        "resolution_minutes": 3 * 540,
        "thresholds": Thresholds(80, 100, 120, 150, 200),
        "hours": HOURS,
    }
    values.update(overrides)
    return ClockInput(**values)  # type: ignore[arg-type]


def _keys(due: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(d.target, d.tier) for d in due]


def test_first_response_warning_at_80_percent_clock_time() -> None:
    clock = _clock()
    at = tier_due_at(clock, FIRST_RESPONSE, "warning")
    assert at == (RECEIVED + timedelta(hours=19, minutes=12)).astimezone(UTC)
    assert _keys(due_tiers(clock, set(), at - timedelta(seconds=1), POSTS, ORG)) == []
    assert _keys(due_tiers(clock, set(), at, POSTS, ORG)) == [(FIRST_RESPONSE, "warning")]


def test_resolution_runs_in_business_time_and_skips_the_weekend() -> None:
    clock = _clock(first_response_minutes=None)
    # 3 working days of 540 minutes from Monday 10:00 -> Thursday 10:00; 80 % = 1296 minutes:
    # 480 on Monday, 540 on Tuesday, 276 on Wednesday -> Wednesday 13:36.
    assert tier_due_at(clock, RESOLUTION, "assignee") == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert tier_due_at(clock, RESOLUTION, "warning") == datetime(2026, 11, 25, 5, 36, tzinfo=UTC)
    friday = _clock(first_response_minutes=None, received_at=datetime(2026, 11, 27, 17, tzinfo=SH))
    # Friday 17:00 + 1620 business minutes: 60 on Friday, 540 Monday and Tuesday, 480 on
    # Wednesday -> Wednesday 17:00.
    assert tier_due_at(friday, RESOLUTION, "assignee") == datetime(2026, 12, 2, 9, tzinfo=UTC)


def test_first_seen_past_several_thresholds_notifies_each_passed_tier_once() -> None:
    clock = _clock()
    # 40 clock hours = 166 % of the first response target; 1020 business minutes (Monday 480,
    # Tuesday 540) = 63 % of the resolution target: no resolution tier yet.
    now = RECEIVED + timedelta(hours=40)
    due = due_tiers(clock, set(), now, POSTS, ORG)
    assert _keys(due) == [
        (FIRST_RESPONSE, "warning"),
        (FIRST_RESPONSE, "assignee"),
        (FIRST_RESPONSE, "branch"),
        (FIRST_RESPONSE, "region"),
    ]
    recipients = {d.tier: d.notice.recipient_id for d in due if d.target == FIRST_RESPONSE}
    assert recipients == {"warning": 1, "assignee": 1, "branch": 2, "region": 3}
    late = {d.tier: d.late_minutes for d in due if d.target == FIRST_RESPONSE}
    assert late["warning"] == 40 * 60 - 1152 and late["region"] == 40 * 60 - 2160
    # Recorded tiers are not due again.
    again = due_tiers(clock, {(d.target, d.tier) for d in due}, now, POSTS, ORG)
    assert again == []


def test_acknowledgement_stops_first_response_and_pause_stops_resolution() -> None:
    acked = _clock(acknowledged_at=RECEIVED + timedelta(hours=1), status="in_progress")
    late = RECEIVED + timedelta(days=30)
    assert {d.target for d in due_tiers(acked, set(), late, POSTS, ORG)} == {RESOLUTION}
    waiting = _clock(acknowledged_at=RECEIVED, status="waiting_on_customer", paused_since=RECEIVED)
    assert due_tiers(waiting, set(), late, POSTS, ORG) == []
    assert next_check_at(waiting, set()) is None
    resolved = _clock(acknowledged_at=RECEIVED, status="resolved")
    assert due_tiers(resolved, set(), late, POSTS, ORG) == []


def test_paused_minutes_move_the_resolution_tiers() -> None:
    base = _clock(first_response_minutes=None, status="in_progress")
    resumed = _clock(first_response_minutes=None, status="in_progress", paused_business_minutes=540)
    one = tier_due_at(base, RESOLUTION, "assignee")
    two = tier_due_at(resumed, RESOLUTION, "assignee")
    assert one is not None and two is not None
    assert two - one == timedelta(days=1)  # Thursday 10:00 -> Friday 10:00


def test_inactive_branch_manager_is_skipped_up_the_chain() -> None:
    org = Org({**ORG.people, 2: Person(2, False, True, manager_id=3)}, (100,))
    due = due_tiers(_clock(), set(), RECEIVED + timedelta(hours=29), POSTS, org)
    branch = [d for d in due if d.tier == "branch"]
    assert [(b.notice.recipient_id, b.notice.reason) for b in branch] == [
        (3, "staff 2 skipped (inactive or unreachable)")
    ]


def test_a_null_percentage_takes_the_tier_off_the_ladder() -> None:
    clock = _clock(thresholds=Thresholds(None, 100, 120, None, 200))
    due = due_tiers(clock, set(), RECEIVED + timedelta(days=3), POSTS, ORG)
    tiers = {d.tier for d in due if d.target == FIRST_RESPONSE}
    assert tiers == {"assignee", "branch", "executive"}


def test_tier_minutes_round_up() -> None:
    assert tier_minutes(7, 80) == 6
    assert tier_minutes(1440, 80) == 1152
    assert tier_minutes(1, 150) == 2


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    offset=st.integers(0, 7 * 24 * 60),
    target=st.integers(1, 5000),
    first=st.integers(1, 3000),
    paused=st.integers(0, 2000),
    pcts=st.lists(st.integers(1, 400), min_size=5, max_size=5),
    step=st.integers(0, 20 * 24 * 60),
)
def test_next_check_at_is_exactly_when_the_next_tier_falls_due(
    offset: int, target: int, first: int, paused: int, pcts: list[int], step: int
) -> None:
    """Checked against the ladder itself: nothing is due a second before next_check_at, and
    at next_check_at something is - wherever the reached tiers stand."""
    pcts.sort()
    clock = _clock(
        received_at=RECEIVED + timedelta(minutes=offset, seconds=offset % 60),
        first_response_minutes=first,
        resolution_minutes=target,
        paused_business_minutes=paused,
        status="in_progress",
        thresholds=Thresholds(*pcts),
    )
    now = clock.received_at + timedelta(minutes=step)
    reached = {(d.target, d.tier) for d in due_tiers(clock, set(), now, POSTS, ORG)}
    upcoming = next_check_at(clock, reached)
    if upcoming is None:
        assert len(reached) == 10
        return
    assert upcoming > now
    assert due_tiers(clock, reached, upcoming - timedelta(seconds=1), POSTS, ORG) == []
    assert due_tiers(clock, reached, upcoming, POSTS, ORG) != []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    offset=st.integers(0, 7 * 24 * 60),
    target=st.integers(1, 5000),
    first=st.integers(1, 3000),
    paused=st.integers(0, 2000),
    pcts=st.lists(st.integers(1, 400), min_size=5, max_size=5),
    step=st.integers(0, 20 * 24 * 60),
)
def test_plan_agrees_with_the_shared_ladder_on_elapsed_minutes(
    offset: int, target: int, first: int, paused: int, pcts: list[int], step: int
) -> None:
    """The instants shortcut equals the plain rule: elapsed minutes (business_minutes_between
    from intake, less the pause) against the ladder's fractions."""
    clock = _clock(
        received_at=RECEIVED + timedelta(minutes=offset, seconds=offset % 60),
        first_response_minutes=first,
        resolution_minutes=target,
        paused_business_minutes=paused,
        status="in_progress",
        thresholds=Thresholds(*sorted(pcts)),
    )
    now = clock.received_at + timedelta(minutes=step)
    due = due_tiers(clock, set(), now, POSTS, ORG)
    ladder = ladder_for(clock.thresholds)
    expected = []
    for name, minutes in ((FIRST_RESPONSE, first), (RESOLUTION, target)):
        elapsed = elapsed_minutes(clock, name, now)
        progress = Progress(timedelta(minutes=elapsed), timedelta(minutes=minutes))
        expected += [(name, n.tier.name, elapsed) for n in ladder.due(progress, set(), POSTS, ORG)]
    assert [(d.target, d.tier, d.elapsed_minutes) for d in due] == expected
