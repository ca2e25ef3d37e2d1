"""One email per recipient per check: the claimed tiers grouped by who receives them.

Pure. The check first claims its escalation rows (insert-or-ignore on complaint, target,
tier); only the tiers it claimed reach this rule, so a re-run or a concurrent check, which
claims nothing, queues nothing. The idempotency key is a second guard: one message per
recipient and check instant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from tasks.complaints.rules.escalation import TARGETS, TIER_NAMES, DueTier


@dataclass(frozen=True)
class Claimed:
    """A tier this check recorded, for one complaint."""

    complaint_id: int
    due: DueTier


@dataclass(frozen=True)
class Batches:
    by_recipient: dict[int, list[Claimed]]
    unnotified: list[Claimed]  # nobody eligible anywhere: recorded, reported, not retried


def group_by_recipient(claimed: Iterable[Claimed]) -> Batches:
    """The claimed tiers per recipient, each list by complaint, then target, then ladder
    order; the ones without a recipient apart."""
    order = {name: i for i, name in enumerate(TIER_NAMES)}
    targets = {name: i for i, name in enumerate(TARGETS)}
    by_recipient: defaultdict[int, list[Claimed]] = defaultdict(list)
    unnotified: list[Claimed] = []
    for item in claimed:
        recipient = item.due.notice.recipient_id
        (unnotified if recipient is None else by_recipient[recipient]).append(item)
    for items in by_recipient.values():
        items.sort(key=lambda c: (c.complaint_id, targets[c.due.target], order[c.due.tier]))
    return Batches(dict(by_recipient), unnotified)


def urgent_first(items: Iterable[Claimed]) -> list[Claimed]:
    """One recipient's claimed tiers, the most urgent complaints first (highest tier reached,
    then the latest), a complaint's tiers together in ladder order: a capped email names the
    ones that matter most."""
    order = {name: i for i, name in enumerate(TIER_NAMES)}
    targets = {name: i for i, name in enumerate(TARGETS)}
    grouped: defaultdict[int, list[Claimed]] = defaultdict(list)
    for item in items:
        grouped[item.complaint_id].append(item)

    def rank(complaint_id: int) -> tuple[int, int, int]:
        tiers = grouped[complaint_id]
        top = max(order[c.due.tier] for c in tiers)
        late = max(c.due.late_minutes for c in tiers)
        return (-top, -late, complaint_id)

    return [
        claim
        for complaint_id in sorted(grouped, key=rank)
        for claim in sorted(
            grouped[complaint_id], key=lambda c: (targets[c.due.target], order[c.due.tier])
        )
    ]


def escalation_key(checked_at: datetime, recipient_id: int) -> str:
    """``complaint_escalation:2026-11-23T09:15:staff:42`` (the check instant in UTC)."""
    instant = checked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"complaint_escalation:{instant}:staff:{recipient_id}"


__all__ = ["Batches", "Claimed", "escalation_key", "group_by_recipient", "urgent_first"]
