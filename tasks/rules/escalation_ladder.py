"""Escalation ladder (逐级上报): ordered tiers, each with a threshold and a recipient, each
notified at most once per item.

Pure: the caller passes how far along an item is (``Progress``), which tiers it has already
reached (recorded on the item: timestamps or events), and a view of the organisation
(``Org``); the rule returns the tiers to notify now and to whom.

Decisions, on purpose:
- An item first seen past several thresholds notifies *every* passed tier at once, each once
  (complaints issue #18: "each passed tier once"); the revisit ladder did the same before.
- A tier's post holder who is inactive or cannot receive mail is skipped up *their* reporting
  chain (``manager_id``), never notified. A vacant post (no branch manager, say) passes to the
  next post up the hierarchy (branch -> region -> senior management).
- A chain that loops or names a manager who does not exist ends at senior management, with the
  reason recorded on the notice (``"cycle at staff 17"``, ``"manager 9 missing"``), so the flow
  can report the data error and still reach someone. The walk always terminates: each staff id
  is visited at most once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum


class RecipientKind(StrEnum):
    ASSIGNEE = "assignee"
    BRANCH_MANAGER = "branch_manager"
    REGION_MANAGER = "region_manager"
    SENIOR_MANAGEMENT = "senior_management"
    ROLE = "role"  # whoever holds ``Tier.role`` (e.g. the marketing admin)


@dataclass(frozen=True)
class Tier:
    """One rung. ``after`` is a duration past the start (or the due date); ``fraction`` a share of
    the item's target (0.8 = a warning at 80 %). Exactly one of them is set."""

    name: str
    recipient: RecipientKind
    after: timedelta | None = None
    fraction: float | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        if (self.after is None) == (self.fraction is None):
            raise ValueError(f"tier {self.name!r}: set exactly one of after / fraction")
        if (self.recipient is RecipientKind.ROLE) != (self.role is not None):
            raise ValueError(f"tier {self.name!r}: a role is given exactly for ROLE tiers")

    def reached(self, progress: Progress) -> bool:
        if self.after is not None:
            return progress.elapsed >= self.after
        assert self.fraction is not None
        if progress.target is None:
            return False  # a fraction of no target is never reached
        return progress.elapsed >= progress.target * self.fraction


@dataclass(frozen=True)
class Progress:
    """How far along an item is: time elapsed (business or clock time: the caller's choice) and,
    for fraction tiers, the target it is measured against."""

    elapsed: timedelta
    target: timedelta | None = None


@dataclass(frozen=True)
class Person:
    """What the ladder needs to know about a staff member."""

    id: int
    active: bool
    reachable: bool  # has an address mail can go to
    manager_id: int | None = None
    role: str | None = None

    @property
    def eligible(self) -> bool:
        return self.active and self.reachable


@dataclass(frozen=True)
class Org:
    """The organisation as the ladder sees it (built from ``tasks.common.directory``)."""

    people: Mapping[int, Person]
    senior_management: Sequence[int] = ()  # in order of preference


@dataclass(frozen=True)
class Posts:
    """The item's post holders (``None``: vacant or unknown)."""

    assignee_id: int | None = None
    branch_manager_id: int | None = None
    region_manager_id: int | None = None


@dataclass(frozen=True)
class Notice:
    tier: Tier
    recipient_id: int | None  # None: nobody eligible anywhere (reported, tier still reached)
    reason: str | None = None  # why the recipient is not the tier's own post holder


@dataclass(frozen=True)
class Ladder:
    tiers: tuple[Tier, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique: {names}")

    def due(
        self, progress: Progress, reached: Collection[str], posts: Posts, org: Org
    ) -> list[Notice]:
        """The tiers to notify now (in ladder order): passed, and not in ``reached``."""
        return [
            resolve(tier, posts, org)
            for tier in self.tiers
            if tier.name not in reached and tier.reached(progress)
        ]


_UP = {
    RecipientKind.ASSIGNEE: RecipientKind.BRANCH_MANAGER,
    RecipientKind.BRANCH_MANAGER: RecipientKind.REGION_MANAGER,
    RecipientKind.REGION_MANAGER: RecipientKind.SENIOR_MANAGEMENT,
}


def _holder(kind: RecipientKind, tier: Tier, posts: Posts, org: Org) -> int | None:
    if kind is RecipientKind.ASSIGNEE:
        return posts.assignee_id
    if kind is RecipientKind.BRANCH_MANAGER:
        return posts.branch_manager_id
    if kind is RecipientKind.REGION_MANAGER:
        return posts.region_manager_id
    if kind is RecipientKind.ROLE:
        holders = sorted(p.id for p in org.people.values() if p.role == tier.role and p.eligible)
        return holders[0] if holders else None
    return None  # senior management: handled by _senior


def _senior(org: Org) -> int | None:
    """The first eligible senior manager."""
    for sid in org.senior_management:
        person = org.people.get(sid)
        if person is not None and person.eligible:
            return sid
    return None


def resolve(tier: Tier, posts: Posts, org: Org) -> Notice:
    """Who receives ``tier`` for an item with ``posts``."""
    kind = tier.recipient
    reasons: list[str] = []
    holder = None
    # A vacant post passes up the hierarchy of posts.
    while kind is not RecipientKind.SENIOR_MANAGEMENT:
        holder = _holder(kind, tier, posts, org)
        if holder is not None:
            break
        reasons.append(f"no {kind.value}")
        kind = _UP.get(kind, RecipientKind.SENIOR_MANAGEMENT)
    if holder is not None:
        found, why = walk_up(holder, org.people)
        if why:
            reasons.append(why)
        if found is not None:
            return Notice(tier, found, "; ".join(reasons) or None)
    senior = _senior(org)
    if senior is None:
        reasons.append("no senior management")
    return Notice(tier, senior, "; ".join(reasons) or None)


def walk_up(start: int, people: Mapping[int, Person]) -> tuple[int | None, str | None]:
    """The first eligible person from ``start`` up the reporting chain, and why it is not
    ``start`` (``None``: it is). ``(None, reason)`` when the chain ends without one: at its top,
    at a cycle, or at a manager who does not exist."""
    seen: set[int] = set()
    current: int | None = start
    skipped = False
    while current is not None:
        if current in seen:
            return None, f"cycle at staff {current}"
        seen.add(current)
        person = people.get(current)
        if person is None:
            missing = "manager" if current != start else "staff"
            return None, f"{missing} {current} missing"
        if person.eligible:
            return current, f"staff {start} skipped (inactive or unreachable)" if skipped else None
        skipped = True
        current = person.manager_id
    return None, f"no eligible manager above staff {start}"


__all__ = [
    "Ladder",
    "Notice",
    "Org",
    "Person",
    "Posts",
    "Progress",
    "RecipientKind",
    "Tier",
    "resolve",
    "walk_up",
]
