"""The survey emails a run queues: the invitation (NPS with eleven one-click score links 0-10,
CSAT after a complaint with five, 1-5) and the one reminder. The links are signed by delivery
(``EmailKind.survey_links``: ``tasks.mail.links.survey_answer_url`` from the context's
``invitation_id`` and ``expires_at``), so the outbox holds no working link."""

from __future__ import annotations

from datetime import date, datetime

from crm_db.enums import SurveyKind
from tasks.mail.outbox import NewMessage

INVITATION_KIND = "survey_invitation"
REMINDER_KIND = "survey_reminder"


def invitation_key(campaign_code: str, customer_id: int, complaint_id: int | None) -> str:
    """``survey:nps:2026Q4:A:customer:123``; a post-complaint one is keyed by its complaint
    (``survey:csat:complaint:45``), of which there is one survey at most."""
    if complaint_id is not None:
        return f"survey:{SurveyKind.CSAT.value}:complaint:{complaint_id}"
    return f"survey:{campaign_code}:customer:{customer_id}"


def reminder_key(invitation_id: int) -> str:
    return f"survey_reminder:invitation:{invitation_id}"


def survey_context(
    *,
    customer_name: str,
    kind: SurveyKind,
    invitation_id: int,
    expires_at: datetime,
    expires_on: date,
    complaint_reference: str | None,
) -> dict[str, object]:
    return {
        "customer_name": customer_name,
        "survey": kind.value,
        "invitation_id": invitation_id,
        # The links expire with the invitation (delivery signs them with this instant).
        "expires_at": expires_at.isoformat(),
        "expires_on": expires_on.isoformat(),
        "complaint_reference": complaint_reference,
        # score_links and unsubscribe_url are signed by delivery (EmailKind.delivery_keys).
    }


def survey_message(
    *,
    email_kind: str,
    key: str,
    customer_id: int,
    email: str,
    name: str,
    locale: str | None,
    context: dict[str, object],
    run_id: int | None,
) -> NewMessage:
    return NewMessage(
        idempotency_key=key,
        kind=email_kind,
        locale=locale or "zh-CN",
        recipient_email=email,
        recipient_name=name,
        customer_id=customer_id,
        staff_id=None,
        context=context,
        run_id=run_id,
    )
