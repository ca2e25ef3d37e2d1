"""Complaint escalation (逐级上报): which tiers of which SLA target fall due, to whom, and when
the next one will.

Pure: a complaint comes in as a ``ClockInput`` (its copied targets and thresholds, its
timestamps, its paused business minutes and the branch's ``BusinessHours``); the tiers already
recorded come in as a set of ``(target, tier)``; ``now`` is passed. Built on the shared
``tasks.rules.escalation_ladder`` (fraction tiers, vacant posts and inactive staff skipped up
the chain) and ``tasks.rules.business_time``.

The two clocks:
- **first response** runs in clock time from ``received_at`` until the complaint is
  acknowledged (or resolved without an acknowledgement); it is never paused.
- **resolution** runs in business time of the complaint's calendar from ``received_at``, minus
  ``paused_business_minutes`` (waiting on the customer, and the time a resolved complaint spent
  resolved before it was reopened); it stands still while paused (``paused_since`` set or
  waiting on the customer) and once resolved.

Each tier is due at ``ceil(target * pct / 100)`` minutes of its clock: the instant is exact
(``add_business_minutes`` is the earliest instant with that many minutes elapsed), so a check
at that instant escalates it, and one a second earlier does not. A tier whose percentage is
NULL is not on the complaint's ladder.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from tasks.rules.business_time import BusinessHours, add_business_minutes, business_minutes_between
from tasks.rules.escalation_ladder import Ladder, Notice, Org, Posts, RecipientKind, Tier, resolve

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
TARGETS = (FIRST_RESPONSE, RESOLUTION)

# Ladder order; the value is who holds the tier (the warning goes to the assignee).
TIERS: tuple[tuple[str, RecipientKind], ...] = (
    ("warning", RecipientKind.ASSIGNEE),
    ("assignee", RecipientKind.ASSIGNEE),
    ("branch", RecipientKind.BRANCH_MANAGER),
    ("region", RecipientKind.REGION_MANAGER),
    ("executive", RecipientKind.SENIOR_MANAGEMENT),
)
TIER_NAMES = tuple(name for name, _ in TIERS)

# Statuses in which nothing runs any more (the resolution clock stops at ``resolved``).
_RESOLVED = frozenset({"resolved", "verified", "closed"})
_PAUSED = frozenset({"waiting_on_customer"})


@dataclass(frozen=True)
class Thresholds:
    """Percentages of a target at which each tier falls due (NULL: not on the ladder)."""

    warn_pct: int | None = 80
    assignee_pct: int | None = 100
    branch_pct: int | None = 100
    region_pct: int | None = 150
    executive_pct: int | None = 200

    def pct(self, tier: str) -> int | None:
        value: int | None = getattr(self, "warn_pct" if tier == "warning" else f"{tier}_pct")
        return value


@dataclass(frozen=True)
class ClockInput:
    """What the rules need to know about one complaint (instants are aware)."""

    received_at: datetime
    status: str
    first_response_minutes: int | None
    resolution_minutes: int | None
    thresholds: Thresholds
    hours: BusinessHours  # the complaint's calendar (24x7 when it has none)
    acknowledged_at: datetime | None = None
    paused_business_minutes: int = 0
    paused_since: datetime | None = None


@dataclass(frozen=True)
class DueTier:
    """A tier that has fallen due: when it did, and how late ``now`` is (clock minutes)."""

    target: str
    tier: str
    threshold_at: datetime
    late_minutes: int
    elapsed_minutes: int  # minutes on the target's clock at ``now``
    notice: Notice


def tier_minutes(target_minutes: int, pct: int) -> int:
    """Minutes of the clock at which a tier at ``pct`` of ``target_minutes`` is due (rounded
    up: a tier at 80 % of 7 minutes is due once 6 whole minutes have elapsed)."""
    return -(-target_minutes * pct // 100)


def _first_response_running(clock: ClockInput) -> bool:
    return clock.acknowledged_at is None and clock.status not in _RESOLVED


def _resolution_running(clock: ClockInput) -> bool:
    return (
        clock.status not in _RESOLVED and clock.status not in _PAUSED and clock.paused_since is None
    )


def running(clock: ClockInput, target: str) -> bool:
    """Whether ``target``'s clock is running (a stopped or paused clock escalates nothing)."""
    if target == FIRST_RESPONSE:
        return _first_response_running(clock) and clock.first_response_minutes is not None
    return _resolution_running(clock) and clock.resolution_minutes is not None


def tier_instants(clock: ClockInput, target: str) -> dict[str, datetime]:
    """The instant (UTC) each tier of ``target`` falls due while the clock runs on, for the
    tiers on the ladder (empty: the clock is stopped or paused). Business time is added once,
    tier after tier in threshold order (adding in steps equals adding at once), so a complaint
    costs one walk over the days of its longest tier, not one per tier."""
    return dict(_walk(clock, target))


def _walk(clock: ClockInput, target: str) -> Iterator[tuple[str, datetime]]:
    """``tier_instants`` lazily, in threshold order (the instants never decrease): a caller
    that stops early does not pay for the business time of the later tiers."""
    if not running(clock, target):
        return
    minutes_by_tier = sorted(
        (tier_minutes(_target_minutes(clock, target), pct), tier)
        for tier in TIER_NAMES
        if (pct := clock.thresholds.pct(tier)) is not None
    )
    if target == FIRST_RESPONSE:
        start = clock.received_at.astimezone(UTC)
        for minutes, tier in minutes_by_tier:
            yield tier, start + timedelta(minutes=minutes)
        return
    at = clock.received_at.astimezone(UTC)
    done = -clock.paused_business_minutes  # paused minutes are added to the first step
    for minutes, tier in minutes_by_tier:
        at = add_business_minutes(at, minutes - done, clock.hours).astimezone(UTC)
        done = minutes
        yield tier, at


def _target_minutes(clock: ClockInput, target: str) -> int:
    minutes = clock.first_response_minutes if target == FIRST_RESPONSE else clock.resolution_minutes
    assert minutes is not None  # running() checked it
    return minutes


def tier_due_at(clock: ClockInput, target: str, tier: str) -> datetime | None:
    """The instant ``tier`` of ``target`` falls due (``None``: the clock is stopped or paused,
    or the tier is not on the ladder)."""
    return tier_instants(clock, target).get(tier)


def elapsed_minutes(clock: ClockInput, target: str, now: datetime) -> int:
    """Whole minutes on ``target``'s clock at ``now`` (business minutes for resolution)."""
    if target == FIRST_RESPONSE:
        return int((now - clock.received_at) // timedelta(minutes=1))
    total = business_minutes_between(clock.received_at, now, clock.hours)
    return max(0, total - clock.paused_business_minutes)


def _minutes_since(clock: ClockInput, target: str, since: datetime, now: datetime) -> int:
    if target == FIRST_RESPONSE:
        return int((now - since) // timedelta(minutes=1))
    return business_minutes_between(since, now, clock.hours)


@lru_cache(maxsize=256)
def ladder_for(thresholds: Thresholds) -> Ladder:
    """The shared ladder with this complaint's percentages (cached: a few distinct policies)."""
    tiers = tuple(
        Tier(name, recipient, fraction=pct / 100)
        for name, recipient in TIERS
        if (pct := thresholds.pct(name)) is not None
    )
    return Ladder(tiers)


@dataclass(frozen=True)
class Plan:
    """What a check does with one complaint: the tiers to notify now, and when to look again."""

    due: tuple[DueTier, ...]
    next_check_at: datetime | None


def plan(
    clock: ClockInput,
    reached: Collection[tuple[str, str]],
    now: datetime,
    posts: Posts,
    org: Org,
) -> Plan:
    """Every tier of both targets due at ``now`` and not in ``reached`` (ladder order per
    target: passed tiers all at once, each once), each with its recipient from the shared
    ladder (vacant posts passed up, inactive staff skipped up the chain); and the instant the
    next unreached tier falls due (``None``: nothing can until the complaint changes)."""
    due: list[DueTier] = []
    upcoming: list[datetime] = []
    for target in TARGETS:
        passed: dict[str, datetime] = {}
        for tier, at in _walk(clock, target):
            if (target, tier) in reached:
                continue
            if at > now:  # the target's next tier; the later ones cannot be sooner
                upcoming.append(at)
                break
            passed[tier] = at
        if not passed:
            continue
        pcts = {tier: clock.thresholds.pct(tier) for tier in passed}
        for tier_rule in ladder_for(clock.thresholds).tiers:
            name = tier_rule.name
            if name not in passed:
                continue
            threshold_at = passed[name]
            minutes = tier_minutes(_target_minutes(clock, target), pcts[name] or 0)
            elapsed = minutes + _minutes_since(clock, target, threshold_at, now)
            due.append(
                DueTier(
                    target,
                    name,
                    threshold_at,
                    _late(now, threshold_at),
                    elapsed,
                    resolve(tier_rule, posts, org),
                )
            )
    return Plan(tuple(due), min(upcoming) if upcoming else None)


def _late(now: datetime, due: datetime) -> int:
    return max(0, int((now - due) // timedelta(minutes=1)))


def due_tiers(
    clock: ClockInput,
    reached: Collection[tuple[str, str]],
    now: datetime,
    posts: Posts,
    org: Org,
) -> list[DueTier]:
    """The tiers to notify at ``now`` (see ``plan``)."""
    return list(plan(clock, reached, now, posts, org).due)


def next_check_at(clock: ClockInput, reached: Iterable[tuple[str, str]]) -> datetime | None:
    """The instant the next tier not in ``reached`` falls due on either target (UTC), or
    ``None`` when nothing can fall due until the complaint changes (clocks stopped or paused,
    every tier reached). The check selects complaints by this value; a lifecycle write that
    changes a clock must recompute it - or set it to the write's instant ("check me now"), and
    the next check recomputes it."""
    done = set(reached)
    instants = [
        at
        for target in TARGETS
        for tier, at in tier_instants(clock, target).items()
        if (target, tier) not in done
    ]
    return min(instants) if instants else None


__all__ = [
    "FIRST_RESPONSE",
    "RESOLUTION",
    "TARGETS",
    "TIERS",
    "TIER_NAMES",
    "ClockInput",
    "DueTier",
    "Plan",
    "Thresholds",
    "due_tiers",
    "elapsed_minutes",
    "ladder_for",
    "next_check_at",
    "plan",
    "running",
    "tier_due_at",
    "tier_instants",
    "tier_minutes",
]
