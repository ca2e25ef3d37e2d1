"""The transition table, and the replay checked against a minute-by-minute brute force."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_db.calendar_sync import package_calendar
from crm_db.enums import ComplaintEventKind, ComplaintStatus
from tasks.complaints.rules.lifecycle import (
    RUNNING,
    TRANSITIONS,
    Event,
    IllegalTransitionError,
    Transition,
    next_status,
    replay,
)
from tasks.complaints.rules.sla import Targets
from tasks.rules.business_time import BusinessHours
from tasks.rules.calendar import WorkCalendar

S = ComplaintStatus
SHANGHAI = ZoneInfo("Asia/Shanghai")
CN = BusinessHours(
    WorkCalendar.from_pattern(
        "12345", {d: v.is_working for d, v in package_calendar().days.items()}
    ),
    SHANGHAI,
)
START = datetime(2026, 9, 28, 1, 0, tzinfo=UTC)  # Monday 09:00 Shanghai, before 国庆
TARGETS = Targets(1440, 1620, 80, 100, 100, 150, 200)


def _working_minute(instant: datetime) -> bool:
    local = instant.astimezone(SHANGHAI)
    return CN.days.is_working_day(local.date()) and time(9) <= local.time() < time(18)


def test_the_happy_path_and_reopen() -> None:
    path = [
        (None, Transition.OPEN, S.NEW),
        (S.NEW, Transition.ACK, S.ACKNOWLEDGED),
        (S.ACKNOWLEDGED, Transition.START, S.IN_PROGRESS),
        (S.IN_PROGRESS, Transition.WAIT, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_CUSTOMER, Transition.RESUME, S.IN_PROGRESS),
        (S.IN_PROGRESS, Transition.RESOLVE, S.RESOLVED),
        (S.RESOLVED, Transition.VERIFY, S.VERIFIED),
        (S.VERIFIED, Transition.CLOSE, S.CLOSED),
        (S.CLOSED, Transition.REOPEN, S.IN_PROGRESS),
    ]
    for current, transition, expected in path:
        assert next_status("CP1", current, transition) is expected


def test_an_illegal_transition_names_the_complaint_and_the_states() -> None:
    with pytest.raises(IllegalTransitionError) as error:
        next_status("CP42", S.NEW, Transition.VERIFY)
    assert str(error.value) == "complaint CP42: cannot verify from new (only from resolved)"
    with pytest.raises(IllegalTransitionError, match="cannot reopen from in_progress"):
        next_status("CP42", S.IN_PROGRESS, Transition.REOPEN)


def test_replay_derives_timestamps_pause_and_reopen() -> None:
    at = [START + timedelta(hours=h) for h in (0, 1, 2, 3, 5, 6, 30, 31)]
    kinds = [S.NEW, S.ACKNOWLEDGED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.IN_PROGRESS,
             S.RESOLVED, S.IN_PROGRESS, S.RESOLVED]  # fmt: skip
    events = [Event(a, ComplaintEventKind.TRANSITION, k) for a, k in zip(at, kinds, strict=True)]
    events.append(Event(at[1], ComplaintEventKind.ASSIGN, S.ACKNOWLEDGED, assignee_id=7))
    derived = replay(events, TARGETS, CN, None)
    assert derived.status is S.RESOLVED
    assert derived.acknowledged_at == at[1] and derived.resolved_at == at[7]
    assert derived.paused_business_minutes == 120  # 12:00-14:00 Shanghai, Monday
    assert derived.reopened_count == 1 and derived.assignee_id == 7
    assert derived.first_response_due_at == START + timedelta(hours=24)
    assert derived.paused_since is None


# A lifecycle walk: each step a transition the table allows, after 0-30 hours.
steps = st.lists(st.tuples(st.sampled_from(list(Transition)[1:]), st.integers(0, 1800)), max_size=8)


@settings(max_examples=150, deadline=None)
@given(steps=steps, target=st.integers(1, 3000))
def test_resolution_due_matches_a_minute_by_minute_clock(
    steps: list[tuple[Transition, int]], target: int
) -> None:
    events = [Event(START, ComplaintEventKind.TRANSITION, S.NEW)]
    status, at = S.NEW, START
    for transition, minutes in steps:
        allowed, to = TRANSITIONS[transition]
        if status not in allowed:
            continue
        at += timedelta(minutes=minutes + 1)
        events.append(Event(at, ComplaintEventKind.TRANSITION, to))
        status = to
    targets = Targets(60, target, 80, 100, 100, 150, 200)
    derived = replay(events, targets, CN, None)
    # Brute force: walk minute by minute; the clock runs in the running states on working
    # minutes; the due instant is the end of the target-th running minute. While stopped
    # before it, the clock is imagined running again from the last stop.
    changes = {e.at: e.to_status for e in events}
    state, clock, minute = S.NEW, 0, START
    last_stop = START
    for before, after in zip(events, events[1:], strict=False):
        if before.to_status in RUNNING or after.to_status in RUNNING:
            last_stop = after.at  # the last time the clock went from running to stopped
    if events[-1].to_status in RUNNING:
        last_stop = events[-1].at
    last_event = last_stop
    due: datetime | None = None
    paused = 0
    while due is None:
        state = changes.get(minute, state)
        after_last = minute >= last_event
        runs = state in RUNNING or after_last
        if runs and _working_minute(minute):
            clock += 1
            if clock == target:
                due = minute + timedelta(minutes=1)
        minute += timedelta(minutes=1)
    assert derived.resolution_due_at == due
    state, minute = S.NEW, START
    while minute < events[-1].at:  # finished pauses: working minutes waiting on the customer
        state = changes.get(minute, state)
        paused += state is S.WAITING_ON_CUSTOMER and _working_minute(minute)
        minute += timedelta(minutes=1)
    if derived.paused_since is None:
        assert derived.paused_business_minutes == paused
