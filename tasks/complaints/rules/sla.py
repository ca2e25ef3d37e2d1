"""The SLA clock of a complaint, pure.

First response: clock minutes from receipt (never paused). Resolution: business minutes of the
branch's calendar while the clock runs (new, acknowledged, in progress); it stops while waiting
on the customer (the pause, counted in business minutes) and once resolved; reopening resumes
it with the minutes that were left.

``resolution_due_at`` is the instant the running time reaches the target. While the clock is
stopped before that, it is projected as if the clock had restarted at the stop (so it keeps its
last value, and a resume moves it later by the business time paused); once reached, it never
moves again (a pause after the breach does not undo the breach).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_db.enums import AbcClass, Severity
from tasks.rules.business_time import (
    BusinessHours,
    add_business_minutes,
    business_minutes_between,
)


class PolicyNotFoundError(LookupError):
    """No SLA policy for a severity (no class row and no class-less row)."""


@dataclass(frozen=True)
class Targets:
    """The targets copied onto a complaint at intake."""

    first_response_minutes: int  # clock minutes
    resolution_minutes: int  # business minutes
    warn_pct: int
    assignee_pct: int
    branch_pct: int
    region_pct: int
    executive_pct: int


@dataclass(frozen=True)
class Policy:
    policy_id: int
    code: str
    severity: Severity
    abc_class: AbcClass | None
    targets: Targets
    calendar_id: int | None  # overrides the branch's calendar when set
    notify_executive_at_intake: bool


def choose_policy(
    policies: Iterable[Policy], severity: Severity, abc_class: AbcClass | None
) -> Policy:
    """The row for the severity and class wins over the class-less row of the severity."""
    by_key: Mapping[tuple[Severity, AbcClass | None], Policy] = {
        (p.severity, p.abc_class): p for p in policies
    }
    found = (by_key.get((severity, abc_class)) if abc_class else None) or by_key.get(
        (severity, None)
    )
    if found is None:
        raise PolicyNotFoundError(
            f"no SLA policy for severity {severity.value!r} (class {abc_class or '-'})"
        )
    return found


def first_response_due(received_at: datetime, targets: Targets) -> datetime:
    return received_at + timedelta(minutes=targets.first_response_minutes)


@dataclass(frozen=True)
class ResolutionClock:
    due_at: datetime
    paused_business_minutes: int  # waiting on the customer, closed pauses only


def resolution_clock(
    running: Sequence[tuple[datetime, datetime | None]],
    pauses: Sequence[tuple[datetime, datetime]],
    resolution_minutes: int,
    hours: BusinessHours,
) -> ResolutionClock:
    """``running``: the stretches the clock ran, in order (the last may be open: ``None``);
    ``pauses``: the finished stretches waiting on the customer."""
    paused = sum(business_minutes_between(s, e, hours) for s, e in pauses)
    remaining = resolution_minutes
    due: datetime | None = None
    for start, end in running:
        if end is None:
            due = add_business_minutes(start, remaining, hours)
            break
        used = business_minutes_between(start, end, hours)
        if used >= remaining:
            due = add_business_minutes(start, remaining, hours)
            break
        remaining -= used
    if due is None:  # stopped before the target: projected from the stop
        last_stop = running[-1][1] if running else None
        if last_stop is None:
            raise ValueError("a resolution clock needs at least one running stretch")
        due = add_business_minutes(last_stop, remaining, hours)
    return ResolutionClock(due_at=due, paused_business_minutes=paused)
