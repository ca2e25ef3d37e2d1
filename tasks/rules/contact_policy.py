"""Contact policy: may this customer get this kind of message now, and on which channel?

One rule for everything customer-facing (revisit care emails today; surveys and complaint
updates next), so consent, bad addresses, the contact cap and survey fatigue mean the same in
every flow. Pure: the facts come from ``tasks.common.contact_policy`` (one read per chunk).

Checked in this order, the first that applies is the reason (the reasons are the revisits'
``care_skipped:<reason>`` counts):
1. consent: ``opted_out`` - marketing-like kinds need marketing consent, surveys survey consent;
   an unsubscribed customer gets neither. Service messages (about the customer's own complaint)
   need none.
2. address: ``no_email`` (missing or undeliverable) / ``invalid_email`` (would be refused by the
   outbox). Where the flow has a phone alternative and the customer a phone, the decision is
   the phone channel instead.
3. the contact cap: ``contact_cap`` - at most one customer-facing email per ``cap_days``,
   counting every email of every kind (the outbox), not only this kind. Service messages are
   exempt: a customer must hear about their own complaint.
4. survey fatigue: ``survey_fatigue`` - no survey invitation within ``survey_fatigue_days`` of
   the last one, of either survey kind. When both are due, the post-complaint one wins
   (``preferred_survey``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class MessageKind(StrEnum):
    CARE = "care"  # revisit care email ("was last time's issue solved?")
    MARKETING = "marketing"
    SURVEY = "survey"  # periodic satisfaction survey
    SURVEY_POST_COMPLAINT = "survey_post_complaint"
    SERVICE = "service"  # about the customer's own complaint or account


SURVEY_KINDS = frozenset({MessageKind.SURVEY, MessageKind.SURVEY_POST_COMPLAINT})
_NEEDS_MARKETING_CONSENT = frozenset({MessageKind.CARE, MessageKind.MARKETING})


class Channel(StrEnum):
    EMAIL = "email"
    PHONE = "phone"


class Reason(StrEnum):
    OPTED_OUT = "opted_out"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    CONTACT_CAP = "contact_cap"
    SURVEY_FATIGUE = "survey_fatigue"


@dataclass(frozen=True, slots=True)
class ContactFacts:
    customer_id: int
    has_email: bool  # present and not marked undeliverable
    email_valid: bool  # the outbox would accept it
    has_phone: bool
    marketing_opt_out: bool
    survey_opt_out: bool
    unsubscribed: bool
    last_email_at: datetime | None  # the last customer-facing email of any kind
    last_survey_at: datetime | None  # the last survey invitation of any survey kind


@dataclass(frozen=True, slots=True)
class ContactRules:
    cap_days: int
    survey_fatigue_days: int = 90


@dataclass(frozen=True, slots=True)
class Decision:
    channel: Channel | None  # None: no contact now
    reason: Reason | None = None  # why not email (None: email it)

    @property
    def email(self) -> bool:
        return self.channel is Channel.EMAIL


def _within(last: datetime | None, now: datetime, days: int) -> bool:
    """Whether ``last`` is less than ``days`` before ``now``."""
    return last is not None and now - last < timedelta(days=days)


def decide(
    facts: ContactFacts,
    kind: MessageKind,
    *,
    now: datetime,
    rules: ContactRules,
    phone_alternative: bool = False,
) -> Decision:
    """Whether and how ``kind`` may reach the customer ``facts`` describes at ``now``."""
    if kind is not MessageKind.SERVICE:
        consent_out = (
            facts.marketing_opt_out if kind in _NEEDS_MARKETING_CONSENT else facts.survey_opt_out
        )
        if consent_out or facts.unsubscribed:
            return Decision(None, Reason.OPTED_OUT)
    address = None
    if not facts.has_email:
        address = Reason.NO_EMAIL
    elif not facts.email_valid:
        address = Reason.INVALID_EMAIL
    if address is not None:
        channel = Channel.PHONE if phone_alternative and facts.has_phone else None
        return Decision(channel, address)
    if kind is not MessageKind.SERVICE and _within(facts.last_email_at, now, rules.cap_days):
        return Decision(None, Reason.CONTACT_CAP)
    if kind in SURVEY_KINDS and _within(facts.last_survey_at, now, rules.survey_fatigue_days):
        return Decision(None, Reason.SURVEY_FATIGUE)
    return Decision(Channel.EMAIL)


def preferred_survey(due: Collection[MessageKind]) -> MessageKind | None:
    """The one survey to invite a customer to when several are due: post-complaint first."""
    for kind in (MessageKind.SURVEY_POST_COMPLAINT, MessageKind.SURVEY):
        if kind in due:
            return kind
    return None


__all__ = [
    "SURVEY_KINDS",
    "Channel",
    "ContactFacts",
    "ContactRules",
    "Decision",
    "MessageKind",
    "Reason",
    "decide",
    "preferred_survey",
]
