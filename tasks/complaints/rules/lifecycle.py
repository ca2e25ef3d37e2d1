"""The complaint lifecycle, pure: which transition is allowed from which state, and the replay
that derives a complaint's status, timestamps, pause and due times from its events.

new → acknowledged → in progress → waiting on customer (clock paused) → resolved → verified
(复查) → closed; reopen returns to in progress.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from crm_db.enums import ComplaintEventKind, ComplaintStatus
from tasks.complaints.rules.sla import Targets, first_response_due, resolution_clock
from tasks.rules.business_time import BusinessHours

S = ComplaintStatus


class Transition(StrEnum):
    OPEN = "open"
    ACK = "ack"
    START = "start"
    WAIT = "wait"
    RESUME = "resume"
    RESOLVE = "resolve"
    VERIFY = "verify"
    CLOSE = "close"
    REOPEN = "reopen"


# transition -> (the states it may start from, the state it leads to)
TRANSITIONS: Final[
    Mapping[Transition, tuple[frozenset[ComplaintStatus | None], ComplaintStatus]]
] = {
    Transition.OPEN: (frozenset({None}), S.NEW),
    Transition.ACK: (frozenset({S.NEW}), S.ACKNOWLEDGED),
    Transition.START: (frozenset({S.NEW, S.ACKNOWLEDGED}), S.IN_PROGRESS),
    Transition.WAIT: (frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS}), S.WAITING_ON_CUSTOMER),
    Transition.RESUME: (frozenset({S.WAITING_ON_CUSTOMER}), S.IN_PROGRESS),
    Transition.RESOLVE: (
        frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER}),
        S.RESOLVED,
    ),
    Transition.VERIFY: (frozenset({S.RESOLVED}), S.VERIFIED),
    Transition.CLOSE: (frozenset({S.VERIFIED}), S.CLOSED),
    Transition.REOPEN: (frozenset({S.RESOLVED, S.VERIFIED, S.CLOSED}), S.IN_PROGRESS),
}
RUNNING: Final = frozenset({S.NEW, S.ACKNOWLEDGED, S.IN_PROGRESS})  # the resolution clock runs
OPEN_STATES: Final = frozenset(set(S) - {S.CLOSED})


class IllegalTransitionError(ValueError):
    """A transition the table does not allow from the complaint's state."""


def next_status(
    complaint_ref: str, current: ComplaintStatus | None, transition: Transition
) -> ComplaintStatus:
    allowed, to = TRANSITIONS[transition]
    if current not in allowed:
        starts = ", ".join(sorted(s.value for s in allowed if s is not None)) or "(none)"
        raise IllegalTransitionError(
            f"complaint {complaint_ref}: cannot {transition.value} from "
            f"{current.value if current else 'nothing'} (only from {starts})"
        )
    return to


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: ComplaintEventKind
    to_status: ComplaintStatus
    assignee_id: int | None = None


@dataclass(frozen=True)
class Derived:
    """Everything on a complaint row that follows from its events and targets."""

    status: ComplaintStatus
    received_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    paused_since: datetime | None
    paused_business_minutes: int
    reopened_count: int
    assignee_id: int | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None


def replay(
    events: Sequence[Event], targets: Targets | None, hours: BusinessHours, assignee_id: int | None
) -> Derived:
    """The complaint as its events (in order of ``at``) say. ``assignee_id`` is the one at
    intake; assign events replace it."""
    if not events or events[0].to_status is not S.NEW:
        raise ValueError("a complaint's events start with its intake (to new)")
    ordered = sorted(events, key=lambda e: e.at)
    received = ordered[0].at
    status: ComplaintStatus = S.NEW
    acknowledged = resolved = verified = closed = paused_since = None
    reopened = 0
    running: list[tuple[datetime, datetime | None]] = []
    pauses: list[tuple[datetime, datetime]] = []
    run_start: datetime | None = received
    for event in ordered:
        if event.kind is ComplaintEventKind.ASSIGN:
            assignee_id = event.assignee_id
            continue
        if event.kind is not ComplaintEventKind.TRANSITION:
            continue
        before, status = status, event.to_status
        if status is S.ACKNOWLEDGED and acknowledged is None:
            acknowledged = event.at
        if status is S.IN_PROGRESS and acknowledged is None:
            acknowledged = event.at  # starting work is a first response too
        if status is S.RESOLVED:
            resolved = event.at
        if status is S.VERIFIED:
            verified = event.at
        if status is S.CLOSED:
            closed = event.at
        if before in (S.RESOLVED, S.VERIFIED, S.CLOSED) and status is S.IN_PROGRESS:
            reopened += 1
            verified = closed = None
        if before is S.WAITING_ON_CUSTOMER and paused_since is not None:
            pauses.append((paused_since, event.at))
            paused_since = None
        if status is S.WAITING_ON_CUSTOMER:
            paused_since = event.at
        if run_start is not None and status not in RUNNING:
            running.append((run_start, event.at))
            run_start = None
        elif run_start is None and status in RUNNING:
            run_start = event.at
    if run_start is not None:
        running.append((run_start, None))
    clock = (
        resolution_clock(running, pauses, targets.resolution_minutes, hours)
        if targets is not None
        else None
    )
    return Derived(
        status=status,
        received_at=received,
        acknowledged_at=acknowledged,
        resolved_at=resolved,
        verified_at=verified,
        closed_at=closed,
        paused_since=paused_since,
        paused_business_minutes=clock.paused_business_minutes if clock else 0,
        reopened_count=reopened,
        assignee_id=assignee_id,
        first_response_due_at=first_response_due(received, targets) if targets else None,
        resolution_due_at=clock.due_at if clock else None,
    )
