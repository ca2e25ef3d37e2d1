"""Complaints in every lifecycle state, each with the events that led there.

Open complaints are recent (some new ones within hours, some older ones well past their SLA,
none escalated yet: that is the escalation flow's work); closed ones spread over the year. A
few were reopened, some waited on the customer (SLA clock paused), some new ones have no
assignee yet (四个不漏: every complaint handled). About one complaint per 250 customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from crm_db.demo import vocab
from crm_db.demo.organisation import OrgPlan
from crm_db.demo.population import Customers
from crm_db.demo.rng import stream
from crm_db.demo.timeline import Timeline, ts_text
from crm_db.enums import AbcClass, ComplaintEventKind, ComplaintStatus, Severity
from tasks.complaints.rules.lifecycle import Event, replay
from tasks.complaints.rules.sla import Policy, choose_policy
from tasks.rules.business_time import BusinessHours

COMPLAINT_COLUMNS = (
    "id",
    "external_id",
    "customer_id",
    "branch_id",
    "category",
    "product",
    "severity",
    "status",
    "assignee_id",
    "sla_policy_id",
    "description",
    "customer_title",
    "source",
    "root_cause",
    "received_at",
    "acknowledged_at",
    "resolved_at",
    "verified_at",
    "closed_at",
    "paused_business_minutes",
    "paused_since",
    "reopened_count",
    "first_response_minutes",
    "resolution_minutes",
    "warn_pct",
    "assignee_pct",
    "branch_pct",
    "region_pct",
    "executive_pct",
    "calendar_id",
    "first_response_due_at",
    "resolution_due_at",
)
EVENT_COLUMNS = (
    "id",
    "complaint_id",
    "at",
    "from_status",
    "to_status",
    "actor_id",
    "note",
    "kind",
    "source",
    "recorded_at",
    "detail_key",
)
# What the customer reads about their complaint (the description is internal).
CUSTOMER_TITLES: Final[dict[str, str]] = {
    "油品质量": "加油后车辆动力异常",
    "计量误差": "加油量核对",
    "服务态度": "加油站服务体验",
    "加油卡充值": "加油卡充值到账",
    "积分与优惠": "积分累计",
    "发票问题": "发票开具",
    "排队等候": "高峰时段排队",
    "便利店商品": "便利店商品质量",
    "设备故障": "加油机故障与卡内金额",
}

CUSTOMERS_PER_COMPLAINT: Final = 250
MIN_PER_STATUS: Final = 6
STATUSES: Final = tuple(ComplaintStatus)
STATUS_P: Final = (0.10, 0.10, 0.18, 0.08, 0.12, 0.10, 0.32)
SEVERITIES: Final = ("low", "normal", "high", "critical")
SEVERITY_P: Final = (0.25, 0.50, 0.18, 0.07)
# How long ago an open complaint was received, in hours (low, high), by status.
AGE_HOURS: Final[dict[ComplaintStatus, tuple[float, float]]] = {
    ComplaintStatus.NEW: (0.5, 72.0),
    ComplaintStatus.ACKNOWLEDGED: (6.0, 240.0),
    ComplaintStatus.IN_PROGRESS: (12.0, 480.0),
    ComplaintStatus.WAITING_ON_CUSTOMER: (48.0, 600.0),
    ComplaintStatus.RESOLVED: (72.0, 720.0),
    ComplaintStatus.VERIFIED: (168.0, 1440.0),
    ComplaintStatus.CLOSED: (336.0, 8640.0),
}
REOPEN_SHARE: Final = 0.06
WAIT_SHARE: Final = 0.3
UNASSIGNED_NEW_SHARE: Final = 0.5
UNASSIGNED_OPEN_SHARE: Final = 0.05


@dataclass(frozen=True)
class ResolvedComplaint:
    complaint_id: int
    customer_id: int
    resolved_at: datetime


@dataclass(frozen=True)
class ComplaintSet:
    complaints: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    resolved: list[ResolvedComplaint]  # for the post-complaint surveys
    customer_ids: frozenset[int]


def _ts(value: datetime | None) -> str | None:
    return ts_text(value) if value is not None else None


class _Story:
    """The events of one complaint, in order, with the timestamps they set."""

    def __init__(self, start: datetime, actor: int | None) -> None:
        self.at = start
        self.actor = actor
        self.events: list[tuple[datetime, str | None, str, int | None, str]] = []
        self.status: str | None = None

    def move(self, to: ComplaintStatus, after_hours: float, note_key: str | None = None) -> None:
        self.at += timedelta(hours=after_hours)
        actor = None if to is ComplaintStatus.NEW else self.actor
        self.events.append(
            (self.at, self.status, to.value, actor, vocab.EVENT_NOTES[note_key or to])
        )
        self.status = to.value

    def shift(self, delta: timedelta) -> None:
        self.at -= delta
        self.events = [
            (at - delta, from_status, to, actor, note)
            for at, from_status, to, actor, note in self.events
        ]


def generate_complaints(
    seed: int,
    customers: Customers,
    org: OrgPlan,
    timeline: Timeline,
    policies: list[Policy],
    hours: BusinessHours,
    calendar_id: int | None,
) -> ComplaintSet:
    """``hours``: the company calendar (every demo branch's region uses it, ``calendar_id``)."""
    rng = stream(seed, "complaints")
    n_customers = len(customers)
    count = max(MIN_PER_STATUS * len(STATUSES), round(n_customers / CUSTOMERS_PER_COMPLAINT))
    guaranteed = [STATUSES[i % len(STATUSES)] for i in range(MIN_PER_STATUS * len(STATUSES))]
    drawn = rng.choice(len(STATUSES), size=count - len(guaranteed), p=STATUS_P)
    statuses = [*guaranteed, *(STATUSES[int(i)] for i in drawn)]
    statuses = [statuses[int(i)] for i in rng.permutation(count)]
    # Complaints come from customers who had a card before the complaint, i.e. any customer.
    who = rng.integers(0, n_customers, count)
    reference = timeline.reference

    complaints: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    resolved: list[ResolvedComplaint] = []
    for index, (status, c) in enumerate(zip(statuses, who.tolist(), strict=True)):
        complaint_id = index + 1
        customer_id = c + 1
        branch_id = int(customers.branch[c])
        manager = int(customers.account_manager[c])
        assignee: int | None = (
            manager if org.staff_active[manager] else int(org.branch_managers[branch_id - 1])
        )
        unassigned_share = (
            UNASSIGNED_NEW_SHARE if status is ComplaintStatus.NEW else UNASSIGNED_OPEN_SHARE
        )
        if status in (ComplaintStatus.NEW, ComplaintStatus.ACKNOWLEDGED) and (
            rng.random() < unassigned_share
        ):
            assignee = None
        severity = SEVERITIES[int(rng.choice(len(SEVERITIES), p=SEVERITY_P))]
        category, products = vocab.COMPLAINT_CATEGORIES[
            int(rng.integers(len(vocab.COMPLAINT_CATEGORIES)))
        ]
        product = products[int(rng.integers(len(products)))]
        low, high = AGE_HOURS[status]
        received = reference - timedelta(hours=float(rng.uniform(low, high)))

        story = _Story(received, assignee)
        story.move(ComplaintStatus.NEW, 0.0)
        rank = STATUSES.index(status)
        if rank >= 1:
            story.move(ComplaintStatus.ACKNOWLEDGED, float(rng.uniform(0.2, 20.0)))
        if rank >= 2:
            story.move(ComplaintStatus.IN_PROGRESS, float(rng.uniform(0.5, 24.0)))
        waits = status is ComplaintStatus.WAITING_ON_CUSTOMER or (
            rank >= 4 and rng.random() < WAIT_SHARE
        )
        if waits:
            story.move(ComplaintStatus.WAITING_ON_CUSTOMER, float(rng.uniform(2.0, 48.0)))
            if rank >= 4:
                story.move(ComplaintStatus.IN_PROGRESS, float(rng.uniform(4.0, 96.0)))
        if rank >= 4:
            story.move(ComplaintStatus.RESOLVED, float(rng.uniform(4.0, 240.0)))
            if rng.random() < REOPEN_SHARE:
                story.move(ComplaintStatus.IN_PROGRESS, float(rng.uniform(24.0, 96.0)), "reopened")
                story.move(ComplaintStatus.RESOLVED, float(rng.uniform(4.0, 120.0)))
        if rank >= 5:
            story.move(ComplaintStatus.VERIFIED, float(rng.uniform(24.0, 120.0)))
        if rank >= 6:
            story.move(ComplaintStatus.CLOSED, float(rng.uniform(12.0, 72.0)))
        # Stories run forward from "received"; one that would end after the seed's "now" is
        # moved back whole, so every timestamp is in the past and the order is kept.
        latest = reference - timedelta(minutes=float(rng.uniform(10.0, 360.0)))
        if story.at > latest:
            delta = story.at - latest
            story.shift(delta)
        pinned_a = bool(customers.pinned_a[c])
        policy = choose_policy(policies, Severity(severity), AbcClass.A if pinned_a else None)
        targets = policy.targets
        # The events are the source of truth: the row's derived columns are their replay.
        derived = replay(
            [
                Event(at, ComplaintEventKind.TRANSITION, ComplaintStatus(to))
                for at, _, to, _, _ in story.events
            ],
            targets,
            hours,
            assignee,
        )
        complaints.append(
            (
                complaint_id,
                f"CP{derived.received_at.year}{complaint_id:07d}",
                customer_id,
                branch_id,
                category,
                product,
                severity,
                derived.status.value,
                assignee,
                policy.policy_id,
                vocab.COMPLAINT_DESCRIPTIONS[category],
                CUSTOMER_TITLES[category],
                "demo",
                vocab.ROOT_CAUSES[int(rng.integers(len(vocab.ROOT_CAUSES)))] if rank >= 4 else None,
                ts_text(derived.received_at),
                _ts(derived.acknowledged_at),
                _ts(derived.resolved_at),
                _ts(derived.verified_at),
                _ts(derived.closed_at),
                derived.paused_business_minutes,
                _ts(derived.paused_since),
                derived.reopened_count,
                targets.first_response_minutes,
                targets.resolution_minutes,
                targets.warn_pct,
                targets.assignee_pct,
                targets.branch_pct,
                targets.region_pct,
                targets.executive_pct,
                policy.calendar_id or calendar_id,
                _ts(derived.first_response_due_at),
                _ts(derived.resolution_due_at),
            )
        )
        for at, from_status, to_status, actor, note in story.events:
            events.append(
                (
                    len(events) + 1,
                    complaint_id,
                    ts_text(at),
                    from_status,
                    to_status,
                    actor,
                    note,
                    "transition",
                    "demo",
                    ts_text(at),
                    "",
                )
            )
        resolved_at = derived.resolved_at
        if resolved_at is not None:
            resolved.append(ResolvedComplaint(complaint_id, customer_id, resolved_at))
    return ComplaintSet(
        complaints=complaints,
        events=events,
        resolved=resolved,
        customer_ids=frozenset(c + 1 for c in who.tolist()),
    )
