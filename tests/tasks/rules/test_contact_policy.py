from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tasks.rules.contact_policy import (
    Channel,
    ContactFacts,
    ContactRules,
    MessageKind,
    Reason,
    decide,
    preferred_survey,
)

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
RULES = ContactRules(cap_days=7, survey_fatigue_days=90)
OK = ContactFacts(
    customer_id=1,
    has_email=True,
    email_valid=True,
    has_phone=True,
    marketing_opt_out=False,
    survey_opt_out=False,
    unsubscribed=False,
    last_email_at=None,
    last_survey_at=None,
)


def _why(facts: ContactFacts, kind: MessageKind, **kw: bool) -> Reason | None:
    return decide(facts, kind, now=NOW, rules=RULES, **kw).reason


def test_a_reachable_consenting_customer_gets_every_kind_by_email() -> None:
    for kind in MessageKind:
        assert decide(OK, kind, now=NOW, rules=RULES).channel is Channel.EMAIL


def test_consent_is_per_kind_and_unsubscribe_stops_all_but_service() -> None:
    no_marketing = replace(OK, marketing_opt_out=True)
    assert _why(no_marketing, MessageKind.CARE) is Reason.OPTED_OUT
    assert _why(no_marketing, MessageKind.MARKETING) is Reason.OPTED_OUT
    assert _why(no_marketing, MessageKind.SURVEY) is None
    no_survey = replace(OK, survey_opt_out=True)
    assert _why(no_survey, MessageKind.SURVEY_POST_COMPLAINT) is Reason.OPTED_OUT
    assert _why(no_survey, MessageKind.CARE) is None
    gone = replace(OK, unsubscribed=True)
    assert {k for k in MessageKind if _why(gone, k) is None} == {MessageKind.SERVICE}


def test_bad_address_gives_the_phone_where_the_flow_has_one() -> None:
    missing = replace(OK, has_email=False, email_valid=False)
    assert decide(missing, MessageKind.CARE, now=NOW, rules=RULES) == decide(
        missing, MessageKind.CARE, now=NOW, rules=RULES, phone_alternative=False
    )
    assert _why(missing, MessageKind.CARE) is Reason.NO_EMAIL
    phoned = decide(missing, MessageKind.SURVEY, now=NOW, rules=RULES, phone_alternative=True)
    assert (phoned.channel, phoned.reason) == (Channel.PHONE, Reason.NO_EMAIL)
    no_phone = replace(missing, has_phone=False)
    assert (
        decide(no_phone, MessageKind.SURVEY, now=NOW, rules=RULES, phone_alternative=True).channel
        is None
    )
    assert _why(replace(OK, email_valid=False), MessageKind.CARE) is Reason.INVALID_EMAIL


@pytest.mark.parametrize(("days_ago", "capped"), [(0, True), (6.9, True), (7, False), (30, False)])
def test_the_contact_cap_counts_any_email_and_spares_service_messages(
    days_ago: float, capped: bool
) -> None:
    recent = replace(OK, last_email_at=NOW - timedelta(days=days_ago))
    for kind in (MessageKind.CARE, MessageKind.MARKETING, MessageKind.SURVEY):
        assert (_why(recent, kind) is Reason.CONTACT_CAP) is capped
    assert _why(recent, MessageKind.SERVICE) is None


def test_survey_fatigue_window_is_a_parameter_and_covers_both_survey_kinds() -> None:
    surveyed = replace(OK, last_survey_at=NOW - timedelta(days=89))
    assert _why(surveyed, MessageKind.SURVEY) is Reason.SURVEY_FATIGUE
    assert _why(surveyed, MessageKind.SURVEY_POST_COMPLAINT) is Reason.SURVEY_FATIGUE
    assert _why(surveyed, MessageKind.CARE) is None  # not a survey
    short = ContactRules(cap_days=7, survey_fatigue_days=30)
    assert decide(surveyed, MessageKind.SURVEY, now=NOW, rules=short).email
    assert _why(replace(OK, last_survey_at=NOW - timedelta(days=90)), MessageKind.SURVEY) is None


def test_post_complaint_beats_periodic() -> None:
    both = {MessageKind.SURVEY, MessageKind.SURVEY_POST_COMPLAINT}
    assert preferred_survey(both) is MessageKind.SURVEY_POST_COMPLAINT
    assert preferred_survey({MessageKind.SURVEY}) is MessageKind.SURVEY
    assert preferred_survey({MessageKind.CARE}) is None
