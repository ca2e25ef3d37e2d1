"""IO shared by both places that send care emails: planning (for the email-channel revisits it
creates, while it has them in hand) and ``queue_care_emails`` (for open ones left over, e.g.
deferred by the contact cap).

A care email goes to a customer with a deliverable address who has not opted out and has had no
customer-facing email within the contact cap. Queuing it marks the revisit ``CARE_QUEUED`` (still
open, in nobody's digest); the relay's 250 completes it and records the contact, a permanent
failure reopens it as a call (``tasks.revisits.care_delivery``). A customer who cannot get email
(opted out, no or undeliverable address) gets a phone revisit in its place (``phone_instead``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from tasks.common.directory import Directory
from tasks.mail.message import is_valid_recipient
from tasks.mail.outbox import NewMessage
from tasks.rules.contact_policy import ContactFacts, ContactRules, MessageKind, decide

CARE_KIND = "revisit_care"

CARE_CONTACT_NOTE = "care email delivered"  # on the contact a delivered care email records
CARE_FAILED_NOTE = "care email not delivered: call instead"  # on a failed attempt's contact
# The outcome of an open revisit whose care email is queued, not yet accepted by the relay.
CARE_QUEUED = "email_queued"
# Why a customer cannot get a care email at all (not "not now", as the contact cap): their
# email-channel revisit becomes a phone call instead.
NO_EMAIL_REASONS = frozenset({"opted_out", "unsubscribed", "no_email", "invalid_email"})


@dataclass(frozen=True, slots=True)
class CareSigner:
    """The account manager a care email names: name and phone in the body, and - when still here
    and reachable by mail - the Reply-To, so a customer's reply reaches a person."""

    name: str
    phone: str | None
    reply_to: str | None


def care_signer(directory: Directory, assignee_id: int | None) -> CareSigner | None:
    """Who signs the care email for a revisit assigned to ``assignee_id`` (``None``: nobody)."""
    member = directory.staff.get(assignee_id) if assignee_id is not None else None
    if member is None:
        return None
    return CareSigner(member.name, member.phone, member.email if member.reachable else None)


@dataclass(frozen=True, slots=True)
class CareRecipient:
    customer_id: int
    name: str
    email: str | None
    email_undeliverable: bool
    locale: str | None
    last_email: datetime | None = None
    last_contact: datetime | None = None


def care_skip_reason(
    *,
    opted_out: bool,
    email: str | None,
    name: str,
    undeliverable: bool,
    last_sent: datetime | None,
    now: datetime,
    cap_days: int,
) -> str | None:
    """Why no care email goes out now (``None``: send it): the contact policy's decision for a
    care email, from facts planning selected beside the due customers."""
    has_email = bool(email) and not undeliverable
    facts = ContactFacts(
        customer_id=0,
        has_email=has_email,
        email_valid=has_email and is_valid_recipient(email, name),
        has_phone=False,
        marketing_opt_out=opted_out,
        survey_opt_out=False,
        unsubscribed=False,
        last_email_at=last_sent,
        last_survey_at=None,
    )
    return care_decision(facts, now=now, cap_days=cap_days)


def care_decision(facts: ContactFacts, *, now: datetime, cap_days: int) -> str | None:
    """The contact policy for a care email: why not (``None``: send it). No phone alternative
    here: the revisit stays open for its manager, who sees it in the digest."""
    decision = decide(facts, MessageKind.CARE, now=now, rules=ContactRules(cap_days=cap_days))
    return None if decision.email or decision.reason is None else decision.reason.value


def care_message(
    *,
    as_of: date,
    recipient: CareRecipient,
    manager: CareSigner | None,
    last_contact_date: date | None,
    last_issue: str | None,
    run_id: int | None,
) -> NewMessage:
    assert recipient.email is not None  # care_skip_reason let it through
    manager_name, manager_phone = (manager.name, manager.phone) if manager else ("", None)
    return NewMessage(
        # kind:period:entity - one care email per customer and day (the contact cap allows one
        # a week anyway). Not keyed by revisit: planning builds it before the revisit has an id.
        idempotency_key=f"{CARE_KIND}:{as_of.isoformat()}:customer:{recipient.customer_id}",
        kind=CARE_KIND,
        locale=recipient.locale or "zh-CN",
        recipient_email=recipient.email,
        recipient_name=recipient.name,
        customer_id=recipient.customer_id,
        staff_id=None,
        context={
            "customer_name": recipient.name,
            "manager_name": manager_name or "",
            "manager_phone": manager_phone,
            "last_contact_date": last_contact_date.isoformat() if last_contact_date else None,
            "last_issue": last_issue,
            # Delivery sets it as the Reply-To header (tasks/mail/build.py), not in the body.
            "reply_to": manager.reply_to if manager else None,
            # feedback_url and unsubscribe_url are signed by delivery (EmailKind.delivery_keys).
        },
        run_id=run_id,
    )


__all__ = [
    "CARE_CONTACT_NOTE",
    "CARE_FAILED_NOTE",
    "CARE_KIND",
    "CARE_QUEUED",
    "NO_EMAIL_REASONS",
    "CareRecipient",
    "CareSigner",
    "care_signer",
    "care_decision",
    "care_message",
    "care_skip_reason",
]
