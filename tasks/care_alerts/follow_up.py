"""IO for the last step of the loop (反馈改进结果给客户): when the urgent revisit a low survey
answer opened is completed, the customer gets a short "here is what we did" email
(``care_follow_up_result``) - once per revisit, in the transaction that records the outcome.

What it says is the revisit's ``customer_summary``, written for the customer when the outcome is
recorded (``crm revisit done --summary``); the internal ``notes`` never reach a customer. With
no summary it thanks them and says their account manager followed up. Consent: a customer who
opted out of surveys or unsubscribed, or has no usable address, gets nothing (the alert keeps
``result_queued_at`` NULL, so the loop's "told the result" share counts them as not told).
Churn alerts are not answered: the customer told us nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_db.models import CareAlert, Customer, Revisit, Staff
from tasks.care_alerts.rules import SURVEY_KINDS
from tasks.common.contact_policy import load_contact_facts
from tasks.mail.outbox import NewMessage, enqueue

RESULT_KIND = "care_follow_up_result"
MAX_SUMMARY_CHARS = 2000


class ResultSkip(StrEnum):
    NOT_AN_ALERT = "not_an_alert"  # no survey alert points at this revisit
    ALREADY_TOLD = "already_told"
    OPTED_OUT = "opted_out"
    NO_EMAIL = "no_email"


def result_key(revisit_id: int) -> str:
    return f"{RESULT_KIND}:revisit:{revisit_id}"


def queue_result_email(session: Session, revisit: Revisit, *, now: datetime) -> ResultSkip | None:
    """Queue the "here is what we did" email for completed ``revisit`` if a survey alert
    opened or made it urgent; ``None`` when queued, else why not. In the caller's transaction."""
    alerts = session.execute(
        select(CareAlert.id, CareAlert.as_of, CareAlert.result_queued_at)
        .where(CareAlert.revisit_id == revisit.id, CareAlert.kind.in_(sorted(SURVEY_KINDS)))
        .order_by(CareAlert.as_of, CareAlert.id)
    ).all()
    if not alerts:
        return ResultSkip.NOT_AN_ALERT
    pending = [a for a in alerts if a.result_queued_at is None]
    if not pending:
        return ResultSkip.ALREADY_TOLD
    facts = load_contact_facts(session.connection(), [revisit.customer_id]).get(revisit.customer_id)
    if facts is None or facts.survey_opt_out or facts.unsubscribed:
        return ResultSkip.OPTED_OUT
    if not facts.email_valid:
        return ResultSkip.NO_EMAIL
    customer = session.get(Customer, revisit.customer_id)
    assert customer is not None and customer.email is not None  # the facts say so
    manager = session.get(Staff, revisit.assignee_id) if revisit.assignee_id else None
    summary = (revisit.customer_summary or "").strip()[:MAX_SUMMARY_CHARS] or None
    enqueue(
        session,
        [
            NewMessage(
                idempotency_key=result_key(revisit.id),
                kind=RESULT_KIND,
                locale=customer.locale,
                recipient_email=customer.email,
                recipient_name=customer.name,
                customer_id=customer.id,
                staff_id=None if manager is None else manager.id,
                context={
                    "customer_name": customer.name,
                    "answered_on": pending[0].as_of.isoformat(),
                    "summary": summary,
                    "manager_name": None if manager is None else manager.name,
                    "manager_phone": None if manager is None else manager.phone,
                },
            )
        ],
        now=now,
    )
    session.execute(
        update(CareAlert)
        .where(CareAlert.id.in_([a.id for a in pending]))
        .values(result_queued_at=now)
    )
    return None


__all__ = ["RESULT_KIND", "ResultSkip", "queue_result_email", "result_key"]
