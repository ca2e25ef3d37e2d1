"""The monthly complaint feedback report (四个不漏: every result fed back), IO: the month's
figures aggregated in SQL per scope, and one email per recipient queued in one transaction.

Recipients: every reachable product and operations department member gets the company's
three controls and the categories routed to their department (``complaint_feedback_routes``;
unrouted categories go to the product department); every reachable region manager gets their
region's view (its complaints, its customers as the denominator). The controls are
``tasks/complaints/rules/report.py``; routing and the month in ``rules/feedback_report.py``.
Key ``complaint_feedback_report:<YYYY-MM>:staff:<id>``: a re-run queues nothing twice.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, and_, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from crm_db.enums import ComplaintEventKind, ComplaintStatus, StaffRole
from crm_db.models import (
    Branch,
    Complaint,
    ComplaintEvent,
    ComplaintFeedbackRoute,
    Customer,
    OutboxMessage,
    Region,
)
from tasks.common.directory import load_directory
from tasks.complaints.rules.feedback_report import (
    DEPARTMENTS,
    SLOWEST,
    TOP_CAUSES,
    Month,
    categories_by_department,
    month_bounds,
    month_to_report,
    report_key,
    report_key_prefix,
)
from tasks.complaints.rules.intake import local_time
from tasks.complaints.rules.report import GOAL_PER_100K, ControlCounts, controls, trend_pct
from tasks.mail.outbox import NewMessage, enqueue, queued_keys

KIND = "complaint_feedback_report"
_C: Table = Complaint.__table__  # type: ignore[assignment]
_REOPENED_FROM = (ComplaintStatus.RESOLVED, ComplaintStatus.VERIFIED, ComplaintStatus.CLOSED)


@dataclass(frozen=True)
class Scope:
    region_id: int | None = None
    categories: tuple[str, ...] | None = None  # None: every category

    def complaints(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.region_id is not None:
            where.append(
                _C.c.branch_id.in_(select(Branch.id).where(Branch.region_id == self.region_id))
            )
        if self.categories is not None:
            where.append(_C.c.category.in_(self.categories))
        return where


def _count(conn: Connection, *where: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(_C).where(*where)).scalar_one())


def control_counts(conn: Connection, month: Month, scope: Scope) -> ControlCounts:
    """The month's counts for the three controls and SLA compliance, in SQL."""
    base = scope.complaints()
    received = and_(_C.c.received_at >= month.start, _C.c.received_at < month.end)
    resolved = and_(_C.c.resolved_at >= month.start, _C.c.resolved_at < month.end)
    due = _C.c.first_response_due_at
    customers = select(func.count()).select_from(Customer)
    if scope.region_id is not None:
        customers = customers.where(
            Customer.branch_id.in_(select(Branch.id).where(Branch.region_id == scope.region_id))
        )
    reopened = (
        select(func.count(func.distinct(ComplaintEvent.complaint_id)))
        .join(_C, _C.c.id == ComplaintEvent.complaint_id)
        .where(
            ComplaintEvent.kind == ComplaintEventKind.TRANSITION,
            ComplaintEvent.to_status == ComplaintStatus.IN_PROGRESS,
            ComplaintEvent.from_status.in_(_REOPENED_FROM),
            ComplaintEvent.at >= month.start,
            ComplaintEvent.at < month.end,
            *base,
        )
    )
    return ControlCounts(
        customers=int(conn.execute(customers).scalar_one()),
        received=_count(conn, received, *base),
        omitted=_count(
            conn,
            received,
            due.is_not(None),
            or_(
                _C.c.acknowledged_at > due,
                and_(_C.c.acknowledged_at.is_(None), due < month.end),
            ),
            *base,
        ),
        reopened=int(conn.execute(reopened).scalar_one()),
        resolved=_count(conn, resolved, *base),
        resolved_on_time=_count(conn, resolved, _C.c.resolved_at <= _C.c.resolution_due_at, *base),
    )


def _by_category(
    conn: Connection, start: datetime, end: datetime, scope: Scope
) -> dict[tuple[str, str | None], int]:
    rows = conn.execute(
        select(_C.c.category, _C.c.product, func.count())
        .where(_C.c.received_at >= start, _C.c.received_at < end, *scope.complaints())
        .group_by(_C.c.category, _C.c.product)
    )
    return {(category, product): int(n) for category, product, n in rows}


def _section(conn: Connection, month: Month, scope: Scope, zone: str) -> dict[str, Any]:
    """Categories with their trend, root causes and slowest cases of ``scope``."""
    now = _by_category(conn, month.start, month.end, scope)
    before = _by_category(conn, month.previous_start, month.start, scope)
    categories = [
        {
            "category": category,
            "product": product,
            "count": now.get((category, product), 0),
            "previous": before.get((category, product), 0),
            "trend_pct": trend_pct(
                now.get((category, product), 0), before.get((category, product), 0)
            ),
        }
        for category, product in sorted(set(now) | set(before), key=lambda k: (k[0], k[1] or ""))
    ]
    resolved = [_C.c.resolved_at >= month.start, _C.c.resolved_at < month.end, *scope.complaints()]
    causes = [
        {"root_cause": cause, "count": int(n)}
        for cause, n in conn.execute(
            select(_C.c.root_cause, func.count().label("n"))
            .where(_C.c.root_cause.is_not(None), *resolved)
            .group_by(_C.c.root_cause)
            .order_by(func.count().desc(), _C.c.root_cause)
            .limit(TOP_CAUSES)
        )
    ]
    stream = conn.execute(
        select(_C.c.external_id, _C.c.category, _C.c.received_at, _C.c.resolved_at).where(*resolved)
    )
    slowest = heapq.nlargest(
        SLOWEST, stream, key=lambda r: (r.resolved_at - r.received_at, r.external_id)
    )
    return {
        "categories": categories,
        "root_causes": causes,
        "slowest": [
            {
                "reference": r.external_id,
                "category": r.category,
                "received_at": local_time(r.received_at, zone),
                "resolved_at": local_time(r.resolved_at, zone),
                "hours": round((r.resolved_at - r.received_at).total_seconds() / 3600, 1),
            }
            for r in slowest
        ],
    }


def _controls(counts: ControlCounts) -> dict[str, Any]:
    figures = controls(counts)
    return {
        "customers": counts.customers,
        "received": counts.received,
        "omitted": counts.omitted,
        "reopened": counts.reopened,
        "resolved": counts.resolved,
        "resolved_on_time": counts.resolved_on_time,
        "complaint_rate": figures.complaint_rate,
        "omission_rate": figures.omission_rate,
        "dissatisfaction_rate": figures.dissatisfaction_rate,
        "sla_compliance_pct": figures.sla_compliance_pct,
        "over_goal": figures.over_goal(),
        "goal": GOAL_PER_100K,
    }


@dataclass(frozen=True)
class ReportRun:
    month: str
    queued: int
    already_queued: int
    departments: int
    regions: int
    company: dict[str, Any]  # the company's controls

    def line(self) -> str:
        c = self.company
        return (
            f"feedback report {self.month}: queued {self.queued}, already queued "
            f"{self.already_queued} (departments {self.departments}, region managers "
            f"{self.regions}); company per 100,000 customers: complaint rate "
            f"{c['complaint_rate']}, omission rate {c['omission_rate']}, dissatisfaction rate "
            f"{c['dissatisfaction_rate']} (goal < {c['goal']:g}); SLA compliance "
            f"{c['sla_compliance_pct']} %"
        )


def queue_feedback_reports(
    session: Session, month: Month, *, zone: ZoneInfo, now: datetime, dry_run: bool = False
) -> ReportRun:
    """Compute and queue the month's reports in ``session``'s transaction (``dry_run``:
    compute and count only)."""
    conn = session.connection()
    directory = load_directory(conn)
    routes = {r.category: r.department for r in session.scalars(select(ComplaintFeedbackRoute))}
    seen = set(
        conn.execute(
            select(_C.c.category)
            .where(_C.c.received_at >= month.previous_start, _C.c.received_at < month.end)
            .distinct()
        ).scalars()
    )
    by_department = categories_by_department(seen | set(routes), routes)
    company = _controls(control_counts(conn, month, Scope()))
    messages: list[NewMessage] = []
    departments = regions = 0
    for department in DEPARTMENTS:
        members = [s for s in directory.staff.values() if s.role is department and s.reachable]
        if not members:
            continue
        section = _section(
            conn, month, Scope(categories=tuple(by_department.get(department, []))), zone.key
        )
        for member in sorted(members, key=lambda s: s.id):
            departments += 1
            messages.append(
                _message(member, month, "department", department.value, company, section)
            )
    region_names = dict(conn.execute(select(Region.id, Region.name)).tuples().all())
    for region_id, manager_id in sorted(directory.region_managers.items()):
        manager = directory.member(manager_id)
        if manager is None or not manager.reachable or manager.role is not StaffRole.REGION_MANAGER:
            continue
        scope = Scope(region_id=region_id)
        name = region_names.get(region_id, str(region_id))
        regions += 1
        messages.append(
            _message(
                manager,
                month,
                "region",
                name,
                _controls(control_counts(conn, month, scope)),
                _section(conn, month, scope, zone.key),
            )
        )
    known = queued_keys(conn, [m.idempotency_key for m in messages])
    fresh = [m for m in messages if m.idempotency_key not in known]
    if not dry_run and messages:
        enqueue(session, messages, now=now)
    return ReportRun(month.label, len(fresh), len(known), departments, regions, company)


def queue_due_feedback_report(
    session: Session,
    as_of: date,
    *,
    zone: ZoneInfo,
    now: datetime,
    month: str | None = None,
    dry_run: bool = False,
) -> ReportRun | None:
    """The scheduled report: the last complete month before ``as_of``, unless its reports are
    queued already (any of its outbox keys): then nothing is computed (``None``). An explicit
    ``month`` (``YYYY-MM``) is always computed. Per recipient the outbox key is the guard, so
    even two runs at once queue each report once."""
    label = month or month_to_report(as_of)
    bounds = month_bounds(label, zone)
    if month is not None:  # asked for: computed again, queued once per recipient (the keys)
        return queue_feedback_reports(session, bounds, zone=zone, now=now, dry_run=dry_run)
    prefix = report_key_prefix(label)
    done = session.scalar(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.idempotency_key >= prefix,
            OutboxMessage.idempotency_key < prefix[:-1] + ";",  # ";" follows ":"
        )
        .limit(1)
    )
    if done is not None:
        return None
    return queue_feedback_reports(session, bounds, zone=zone, now=now, dry_run=dry_run)


def _message(
    member: Any,
    month: Month,
    scope_kind: str,
    scope_name: str,
    figures: dict[str, Any],
    section: dict[str, Any],
) -> NewMessage:
    assert member.email is not None
    return NewMessage(
        idempotency_key=report_key(month.label, member.id),
        kind=KIND,
        locale=member.locale or "zh-CN",
        recipient_email=member.email,
        recipient_name=member.name,
        customer_id=None,
        staff_id=member.id,
        context={
            "recipient_name": member.name,
            "month": month.label,
            "scope_kind": scope_kind,
            "scope_name": scope_name,
            "controls": figures,
            **section,
        },
    )


__all__ = [
    "KIND",
    "ReportRun",
    "Scope",
    "control_counts",
    "queue_due_feedback_report",
    "queue_feedback_reports",
]
