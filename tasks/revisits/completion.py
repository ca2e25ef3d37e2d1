"""Recording a revisit's outcome (from ``crm revisit done``, the digest link page, or an import).

``completed`` and ``issue_raised`` mean the customer was reached: the revisit closes and the
contact enters the customer file, which starts the next cadence. ``no_answer`` and
``rescheduled`` are attempts: they are recorded in the file, and the revisit stays open.

``customer_summary`` is what was done in words for the customer (never the notes): when the
revisit closes an urgent follow-up of a low survey answer (``reason = 'care_alert'``), the
customer is told it in a "here is what we did" email (``tasks.care_alerts.follow_up``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from crm_db.enums import REACHED_OUTCOMES, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Revisit
from tasks.care_alerts.follow_up import queue_result_email
from tasks.care_alerts.rules import URGENT_REASON
from tasks.revisits.rules.planning import combined_notes

REACHED = REACHED_OUTCOMES
MAX_NOTES = 2000


class RevisitOutcomeError(ValueError):
    """The outcome cannot be recorded (unknown revisit, already closed, bad notes)."""


@dataclass(frozen=True)
class OutcomeResult:
    revisit_id: int
    closed: bool
    already_recorded: bool


def record_outcome(
    session: Session,
    revisit_id: int,
    outcome: ContactOutcome,
    *,
    now: datetime,
    staff_id: int | None = None,
    notes: str | None = None,
    customer_summary: str | None = None,
) -> OutcomeResult:
    """Record ``outcome`` for an open revisit, in the caller's transaction.

    Submitting the same closing outcome twice (a double click, a re-sent form) is a no-op.
    """
    if notes is not None and (len(notes) > MAX_NOTES or "\x00" in notes):
        raise RevisitOutcomeError(f"revisit {revisit_id}: notes must be under {MAX_NOTES} chars")
    if customer_summary is not None and (
        len(customer_summary) > MAX_NOTES or "\x00" in customer_summary
    ):
        raise RevisitOutcomeError(
            f"revisit {revisit_id}: customer_summary must be under {MAX_NOTES} chars"
        )
    revisit = session.get(Revisit, revisit_id, with_for_update=True)
    if revisit is None:
        raise RevisitOutcomeError(f"revisit {revisit_id} does not exist")
    if revisit.status is not RevisitStatus.OPEN:
        if revisit.status is RevisitStatus.DONE and revisit.outcome == outcome.value:
            return OutcomeResult(revisit_id, closed=True, already_recorded=True)
        raise RevisitOutcomeError(
            f"revisit {revisit_id} is already {revisit.status.value}"
            + (f" ({revisit.outcome})" if revisit.outcome else "")
        )
    session.add(
        ContactHistory(
            customer_id=revisit.customer_id,
            staff_id=staff_id or revisit.assignee_id,
            channel=revisit.channel,
            outcome=outcome,
            occurred_at=now,
            revisit_id=revisit.id,
            notes=notes,
        )
    )
    closed = outcome in REACHED
    if closed:
        revisit.status = RevisitStatus.DONE
        revisit.outcome = outcome.value
        revisit.completed_at = now
        revisit.notes = combined_notes(revisit.notes, notes)
        if customer_summary is not None and customer_summary.strip():
            revisit.customer_summary = customer_summary.strip()
        if revisit.reason == URGENT_REASON:
            session.flush()
            queue_result_email(session, revisit, now=now)
    return OutcomeResult(revisit_id, closed=closed, already_recorded=False)
