"""A customer's "not solved" on a care email's page becomes complaint work (四个不漏: every
problem recorded), in the answer's transaction.

The email asked about the customer's latest complaint received before it was queued (the one
it quoted). Then, in this order:
1. the customer has an open complaint on that issue (that one, or a later one of its category
   still being worked): a ``note`` event on it records the answer - no duplicate;
2. else that complaint was resolved, verified or closed: it is reopened (back to in progress,
   counted by the dissatisfaction rate);
3. else (no complaint on record any more): a new complaint is opened (source
   ``care_feedback``, ``source_ref`` ``care_email:<outbox id>``) with the quoted issue as its
   title and the customer's comment as its description, and its intake notices are queued.
Each event carries ``detail_key`` ``care_email:<outbox id>`` and a note naming the revisit
(the call) the answer opened, so the complaint links to what raised it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import (
    ComplaintEventKind,
    ComplaintSource,
    ComplaintStatus,
    EventSource,
    Severity,
)
from crm_db.models import Complaint, ComplaintEvent, Customer, OutboxMessage
from crm_db.types import utcnow
from tasks.common.write_lock import get_for_update
from tasks.complaints.intake import open_with_reference, queue_intake_notices
from tasks.complaints.lifecycle import Intake, apply_event
from tasks.complaints.rules.lifecycle import Transition

ACTIVE = frozenset(
    {
        ComplaintStatus.NEW,
        ComplaintStatus.ACKNOWLEDGED,
        ComplaintStatus.IN_PROGRESS,
        ComplaintStatus.WAITING_ON_CUSTOMER,
    }
)
FALLBACK_CATEGORY = "客户反馈未解决"


class Effect(StrEnum):
    NOTED = "noted"
    REOPENED = "reopened"
    OPENED = "opened"


@dataclass(frozen=True)
class NotSolved:
    effect: Effect
    complaint_id: int
    reference: str


def record_not_solved(
    session: Session,
    *,
    customer: Customer,
    outbox_id: int,
    revisit_id: int | None,
    comment: str | None,
    now: datetime,
) -> NotSolved:
    email = session.get(OutboxMessage, outbox_id)
    assert email is not None  # the answer's transaction holds its row
    detail = f"care_email:{outbox_id}"
    note = f"care email {outbox_id}: the customer answered not solved"
    if revisit_id is not None:
        note += f"; call: revisit {revisit_id}"
    if comment:
        note += f"\n{comment}"
    asked = session.scalars(
        select(Complaint)
        .where(Complaint.customer_id == customer.id, Complaint.received_at <= email.created_at)
        .order_by(Complaint.received_at.desc(), Complaint.id.desc())
        .limit(1)
    ).one_or_none()
    if asked is not None:
        working = (
            asked
            if asked.status in ACTIVE
            else session.scalars(
                select(Complaint)
                .where(
                    Complaint.customer_id == customer.id,
                    Complaint.category == asked.category,
                    Complaint.status.in_(sorted(ACTIVE)),
                )
                .order_by(Complaint.received_at.desc(), Complaint.id.desc())
                .limit(1)
            ).one_or_none()
        )
        if working is not None:
            locked = get_for_update(session, Complaint, working.id)
            assert locked is not None
            session.add(
                ComplaintEvent(
                    complaint_id=locked.id,
                    at=now,
                    from_status=locked.status,
                    to_status=locked.status,
                    note=note,
                    kind=ComplaintEventKind.NOTE,
                    source=EventSource.WEB,
                    recorded_at=utcnow(),
                    detail_key=detail,
                )
            )
            session.flush()
            return NotSolved(Effect.NOTED, locked.id, locked.external_id)
        reopened = apply_event(
            session, asked.id, Transition.REOPEN, now, None, EventSource.WEB, note, detail
        )
        return NotSolved(Effect.REOPENED, reopened.id, reopened.external_id)
    issue = str((email.context or {}).get("last_issue") or "").strip() or None
    complaint = open_with_reference(
        session,
        now,
        lambda reference: Intake(
            external_id=reference,
            customer_id=customer.id,
            branch_id=customer.branch_id,
            category=(issue or FALLBACK_CATEGORY)[:80],
            severity=Severity.NORMAL,
            received_at=now,
            description=comment or "",
            customer_title=issue[:200] if issue else None,
            source=ComplaintSource.CARE_FEEDBACK,
            source_ref=detail,
        ),
        source=EventSource.WEB,
        note=note,
    )
    queue_intake_notices(session, [complaint], now=now)
    return NotSolved(Effect.OPENED, complaint.id, complaint.external_id)


__all__ = ["Effect", "NotSolved", "record_not_solved"]
