"""Complaint writes: every change is an event, and the complaint row is re-derived from its
events (``rules.lifecycle.replay``) in the same transaction, under the write lock.

Stable public API (the checks flow and the simulation call it):
``open_complaint(session, ...) -> Complaint`` and
``apply_event(session, complaint_id, transition, at, actor_id, source, note) -> Complaint``,
``assign(session, complaint_id, assignee_id, at, actor_id, source, note) -> Complaint``.
The caller owns the transaction (commit/rollback); these lock the complaint first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import (
    AbcClass,
    ComplaintEventKind,
    ComplaintSource,
    ComplaintStatus,
    EventSource,
    Severity,
)
from crm_db.models import Complaint, ComplaintEvent, Customer
from crm_db.types import utcnow
from tasks.common.write_lock import get_for_update
from tasks.complaints.clock import next_check, reached_tiers
from tasks.complaints.policies import branch_calendar_id, complaint_hours, load_policies
from tasks.complaints.rules.lifecycle import Event, Transition, next_status, replay
from tasks.complaints.rules.sla import Targets, choose_policy


class ComplaintNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class Intake:
    external_id: str
    customer_id: int
    branch_id: int | None
    category: str
    severity: Severity
    received_at: datetime
    description: str = ""
    customer_title: str | None = None
    product: str | None = None
    assignee_id: int | None = None
    source: ComplaintSource = ComplaintSource.CLI
    source_ref: str | None = None


def _targets(complaint: Complaint) -> Targets | None:
    if complaint.resolution_minutes is None or complaint.first_response_minutes is None:
        return None
    return Targets(
        first_response_minutes=complaint.first_response_minutes,
        resolution_minutes=complaint.resolution_minutes,
        warn_pct=complaint.warn_pct or 0,
        assignee_pct=complaint.assignee_pct or 0,
        branch_pct=complaint.branch_pct or 0,
        region_pct=complaint.region_pct or 0,
        executive_pct=complaint.executive_pct or 0,
    )


def _events(session: Session, complaint_id: int) -> list[Event]:
    rows = session.scalars(
        select(ComplaintEvent)
        .where(ComplaintEvent.complaint_id == complaint_id)
        .order_by(ComplaintEvent.at, ComplaintEvent.id)
    )
    return [Event(r.at, r.kind, r.to_status, r.assignee_id) for r in rows]


def refresh(session: Session, complaint: Complaint, intake_assignee: int | None) -> Complaint:
    """Write onto ``complaint`` what its events say."""
    session.flush()
    hours = complaint_hours(session, complaint.calendar_id)
    derived = replay(_events(session, complaint.id), _targets(complaint), hours, intake_assignee)
    complaint.status = derived.status
    complaint.received_at = derived.received_at
    complaint.acknowledged_at = derived.acknowledged_at
    complaint.resolved_at = derived.resolved_at
    complaint.verified_at = derived.verified_at
    complaint.closed_at = derived.closed_at
    complaint.paused_since = derived.paused_since
    complaint.paused_business_minutes = derived.paused_business_minutes
    complaint.reopened_count = derived.reopened_count
    complaint.assignee_id = derived.assignee_id
    complaint.first_response_due_at = derived.first_response_due_at
    complaint.resolution_due_at = derived.resolution_due_at
    # The complaint check reads only complaints due by this (their clocks may have moved).
    complaint.next_check_at = next_check(complaint, hours, reached_tiers(session, complaint.id))
    session.flush()
    return complaint


def copy_targets(session: Session, complaint: Complaint, abc_class: AbcClass | None) -> None:
    policy = choose_policy(load_policies(session), complaint.severity, abc_class)
    t = policy.targets
    complaint.sla_policy_id = policy.policy_id
    complaint.first_response_minutes = t.first_response_minutes
    complaint.resolution_minutes = t.resolution_minutes
    complaint.warn_pct, complaint.assignee_pct = t.warn_pct, t.assignee_pct
    complaint.branch_pct, complaint.region_pct = t.branch_pct, t.region_pct
    complaint.executive_pct = t.executive_pct
    complaint.calendar_id = policy.calendar_id or branch_calendar_id(session, complaint.branch_id)


def open_complaint(
    session: Session,
    intake: Intake,
    *,
    actor_id: int | None = None,
    source: EventSource = EventSource.CLI,
    note: str | None = None,
    recorded_at: datetime | None = None,
) -> Complaint:
    """A new complaint with the targets in force copied and its intake event. An existing
    ``external_id`` is returned unchanged (idempotent). ``recorded_at`` defaults to the wall
    clock."""
    existing = session.scalar(select(Complaint).where(Complaint.external_id == intake.external_id))
    if existing is not None:
        return existing
    abc = session.scalar(select(Customer.abc_class).where(Customer.id == intake.customer_id))
    complaint = Complaint(
        external_id=intake.external_id,
        customer_id=intake.customer_id,
        branch_id=intake.branch_id,
        category=intake.category,
        product=intake.product,
        severity=intake.severity,
        status=ComplaintStatus.NEW,
        assignee_id=intake.assignee_id,
        description=intake.description,
        customer_title=intake.customer_title,
        source=intake.source,
        source_ref=intake.source_ref,
        received_at=intake.received_at,
    )
    copy_targets(session, complaint, abc)
    session.add(complaint)
    session.flush()
    session.add(
        ComplaintEvent(
            complaint_id=complaint.id,
            at=intake.received_at,
            from_status=None,
            to_status=ComplaintStatus.NEW,
            actor_id=actor_id,
            note=note,
            kind=ComplaintEventKind.TRANSITION,
            source=source,
            recorded_at=recorded_at or utcnow(),
            detail_key="",
        )
    )
    return refresh(session, complaint, intake.assignee_id)


def _locked(session: Session, complaint_id: int) -> Complaint:
    complaint = get_for_update(session, Complaint, complaint_id)
    if complaint is None:
        raise ComplaintNotFoundError(f"no complaint with id {complaint_id}")
    return complaint


def _intake_assignee(session: Session, complaint: Complaint) -> int | None:
    # Assign events replace the assignee in the replay; without any, the row's stays.
    return complaint.assignee_id


def apply_event(
    session: Session,
    complaint_id: int,
    transition: Transition,
    at: datetime,
    actor_id: int | None,
    source: EventSource,
    note: str | None = None,
    detail_key: str = "",
    *,
    recorded_at: datetime | None = None,
) -> Complaint:
    """Record ``transition`` at ``at`` (checked against the table) and re-derive the row.
    ``detail_key`` names what caused it (e.g. ``care_email:42``)."""
    complaint = _locked(session, complaint_id)
    to = next_status(complaint.external_id, complaint.status, transition)
    latest = session.scalar(
        select(ComplaintEvent.at)
        .where(
            ComplaintEvent.complaint_id == complaint.id,
            # The check's escalation records are stamped with the check's instant; a later
            # lifecycle event with an earlier explicit time must still be accepted.
            ComplaintEvent.kind != ComplaintEventKind.ESCALATION,
        )
        .order_by(ComplaintEvent.at.desc())
        .limit(1)
    )
    if latest is not None and at <= latest:
        # Events replay in time order: one dated before the last would rewrite history.
        raise ValueError(
            f"complaint {complaint.external_id}: {transition.value} at {at.isoformat()} is "
            f"not after its last event ({latest.isoformat()})"
        )
    session.add(
        ComplaintEvent(
            complaint_id=complaint.id,
            at=at,
            from_status=complaint.status,
            to_status=to,
            actor_id=actor_id,
            note=note,
            kind=ComplaintEventKind.TRANSITION,
            source=source,
            recorded_at=recorded_at or utcnow(),
            detail_key=detail_key,
        )
    )
    return refresh(session, complaint, _intake_assignee(session, complaint))


def assign(
    session: Session,
    complaint_id: int,
    assignee_id: int,
    at: datetime,
    actor_id: int | None,
    source: EventSource,
    note: str | None = None,
    *,
    recorded_at: datetime | None = None,
) -> Complaint:
    """Record the assignment at ``at``; ``recorded_at`` defaults to the wall clock (the
    complaint check passes its own instant, so a check's writes all carry its ``now``)."""
    complaint = _locked(session, complaint_id)
    session.add(
        ComplaintEvent(
            complaint_id=complaint.id,
            at=at,
            from_status=complaint.status,
            to_status=complaint.status,
            actor_id=actor_id,
            assignee_id=assignee_id,
            note=note,
            kind=ComplaintEventKind.ASSIGN,
            source=source,
            detail_key=f"assignee:{assignee_id}",
            recorded_at=recorded_at or utcnow(),
        )
    )
    return refresh(session, complaint, complaint.assignee_id)
