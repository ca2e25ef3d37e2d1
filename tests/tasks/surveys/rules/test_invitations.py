"""Who is invited today: waves per class, post-complaint timing, one survey per customer with the
post-complaint one first, the shared contact policy (consent, address, cap, fatigue), reminders
and expiry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_db.enums import AbcClass, SurveyKind, SurveyPeriod
from tasks.rules.calendar import WorkCalendar
from tasks.rules.contact_policy import ContactFacts
from tasks.surveys.rules.invitations import (
    DEFAULT_RULES,
    Candidate,
    PolicyError,
    SurveyRules,
    choose,
    csat_due_on,
    expires_at,
    expiry_base,
    is_expired,
    reminder_cutoff,
    reminder_skip,
    resolved_window,
    unreachable_reason,
    waves,
)

CAL = WorkCalendar()  # Monday to Friday
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def facts(customer_id: int = 1, **changes: Any) -> ContactFacts:
    base = ContactFacts(
        customer_id=customer_id,
        has_email=True,
        email_valid=True,
        has_phone=True,
        marketing_opt_out=False,
        survey_opt_out=False,
        unsubscribed=False,
        last_email_at=None,
        last_survey_at=None,
    )
    return replace(base, **changes)


def nps(customer_id: int = 1, **changes: object) -> Candidate:
    base = Candidate(customer_id, SurveyKind.NPS, "nps:2026Q4:A", date(2026, 11, 20), AbcClass.A)
    return replace(base, **changes)  # type: ignore[arg-type]


def csat(customer_id: int = 1, complaint_id: int = 10, due: date = date(2026, 11, 23)) -> Candidate:
    return Candidate(customer_id, SurveyKind.CSAT, "csat:2026-11", due, AbcClass.A, complaint_id)


def test_a_wave_first_run_mid_period_spreads_over_the_days_left() -> None:
    [a, *_] = waves(date(2026, 11, 23), DEFAULT_RULES, CAL)
    assert a.starts_on == date(2026, 11, 23) and a.days[0] == date(2026, 11, 23)
    assert len(a.days) == 29  # 23 Nov to 31 Dec, weekdays
    assert a.bound == -(-(1 << 32) // 29)  # one day's share
    later = waves(date(2026, 11, 24), DEFAULT_RULES, CAL, {"nps:2026Q4:A": date(2026, 11, 23)})
    assert later[0].days == a.days and later[0].bound == -(-2 * (1 << 32) // 29)


def test_default_waves_per_class() -> None:
    started = {
        "nps:2026Q4:A": date(2026, 10, 1),
        "nps:2026H2:B": date(2026, 7, 1),
        "nps:2026:C": date(2026, 1, 1),
    }
    result = waves(date(2026, 11, 23), DEFAULT_RULES, CAL, started)
    assert [(w.abc_class, w.code) for w in result] == [
        (AbcClass.A, "nps:2026Q4:A"),
        (AbcClass.B, "nps:2026H2:B"),
        (AbcClass.C, "nps:2026:C"),
    ]
    # The further through its period, the more of the class is due: 23 Nov is ~60 % through
    # the quarter, ~80 % through the half year, ~90 % through the year.
    a, b, c = result
    assert 0.55 < a.bound / (1 << 32) < b.bound / (1 << 32) < c.bound / (1 << 32) < 0.95


def test_a_switched_off_class_has_no_wave() -> None:
    rules = SurveyRules(periods={AbcClass.A: SurveyPeriod.QUARTER, AbcClass.C: SurveyPeriod.YEAR})
    assert [w.abc_class for w in waves(date(2026, 11, 23), rules, CAL)] == [AbcClass.A, AbcClass.C]


def test_policy_values_that_cannot_work_name_the_setting() -> None:
    with pytest.raises(PolicyError, match="survey.reminder_days"):
        SurveyRules(periods={}, reminder_days=14, expiry_days=14)
    with pytest.raises(PolicyError, match="survey.expiry_days"):
        SurveyRules(periods={}, expiry_days=0)
    with pytest.raises(PolicyError, match="survey.post_complaint_delay_days"):
        SurveyRules(periods={}, post_complaint_delay_days=-1)


def test_post_complaint_due_three_working_days_after_resolution() -> None:
    assert csat_due_on(date(2026, 11, 20), DEFAULT_RULES, CAL) == date(2026, 11, 25)  # Fri->Wed


def test_resolved_window_matches_brute_force() -> None:
    for rules in (DEFAULT_RULES, replace(DEFAULT_RULES, post_complaint_delay_days=0)):
        for offset in range(21):
            as_of = date(2026, 11, 16) + timedelta(days=offset)
            window = resolved_window(as_of, rules, CAL)
            oldest = as_of - timedelta(days=rules.post_complaint_window_days)
            for back in range(60):
                resolved = as_of - timedelta(days=back)
                due = csat_due_on(resolved, rules, CAL)
                inside = window.first <= resolved <= window.last
                assert inside == (oldest <= due <= as_of), (as_of, resolved)
                # After ``last``: the survey is still to come.
                assert (resolved > window.last) == (due > as_of)


def test_one_survey_a_customer_and_post_complaint_first() -> None:
    outcomes = choose(
        [nps(1), csat(1, 11, date(2026, 11, 23)), csat(1, 10, date(2026, 11, 20)), nps(2)],
        {1: facts(1), 2: facts(2)},
        now=NOW,
        rules=DEFAULT_RULES,
        cap_days=7,
    )
    invited = [(o.candidate.customer_id, o.candidate.complaint_id) for o in outcomes if o.invite]
    assert invited == [(1, 10), (2, None)]  # the earliest due complaint, then customer 2's wave
    skipped = sorted(
        (o.candidate.kind.value, o.candidate.complaint_id or 0, o.reason)
        for o in outcomes
        if not o.invite
    )
    assert skipped == [("csat", 11, "one_survey_per_day"), ("nps", 0, "post_complaint_first")]


def test_a_coming_post_complaint_survey_holds_the_periodic_one_back() -> None:
    [outcome] = choose(
        [nps(1, post_complaint_pending=True)],
        {1: facts()},
        now=NOW,
        rules=DEFAULT_RULES,
        cap_days=7,
    )
    assert (outcome.invite, outcome.reason) == (False, "post_complaint_first")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"survey_opt_out": True}, "opted_out"),
        ({"unsubscribed": True}, "opted_out"),
        ({"has_email": False, "email_valid": False}, "no_email"),
        ({"email_valid": False}, "invalid_email"),
        ({"last_email_at": NOW - timedelta(days=6, hours=23)}, "contact_cap"),
        ({"last_survey_at": NOW - timedelta(days=89, hours=23)}, "survey_fatigue"),
        ({"last_email_at": NOW - timedelta(days=7)}, None),
        ({"last_survey_at": NOW - timedelta(days=90)}, None),
        ({"marketing_opt_out": True}, None),  # surveys need survey consent, not marketing
    ],
)
@pytest.mark.parametrize("kind", ["nps", "csat"])
def test_the_shared_contact_policy_decides(
    change: dict[str, Any], reason: str | None, kind: str
) -> None:
    candidate = nps() if kind == "nps" else csat()
    [outcome] = choose([candidate], {1: facts(**change)}, now=NOW, rules=DEFAULT_RULES, cap_days=7)
    assert outcome.reason == reason
    assert outcome.invite is (reason is None)


def test_fatigue_follows_the_policy_and_a_vanished_customer_is_skipped() -> None:
    recent = facts(last_survey_at=NOW - timedelta(days=40))
    short = replace(DEFAULT_RULES, fatigue_days=30)
    [outcome] = choose([nps()], {1: recent}, now=NOW, rules=short, cap_days=7)
    assert outcome.invite
    [gone] = choose([nps(5)], {}, now=NOW, rules=DEFAULT_RULES, cap_days=7)
    assert (gone.invite, gone.reason) == (False, "no_email")


def test_reminders_ignore_the_cap_and_fatigue_but_not_consent_or_address() -> None:
    invited_now = facts(last_email_at=NOW - timedelta(days=5), last_survey_at=NOW)
    assert reminder_skip(invited_now, now=NOW) is None
    assert reminder_skip(facts(survey_opt_out=True), now=NOW) == "opted_out"
    assert reminder_skip(facts(unsubscribed=True), now=NOW) == "opted_out"
    assert reminder_skip(facts(has_email=False), now=NOW) == "no_email"
    assert reminder_skip(None, now=NOW) == "no_email"
    assert reminder_cutoff(NOW, DEFAULT_RULES) == NOW - timedelta(days=5)


def test_expiry_is_the_end_of_the_last_local_day() -> None:
    expiry = expires_at(date(2026, 11, 23), DEFAULT_RULES, SHANGHAI)
    assert expiry == datetime(2026, 12, 8, 0, 0, tzinfo=SHANGHAI)
    assert not is_expired(expiry, expiry - timedelta(microseconds=1))
    assert is_expired(expiry, expiry)


def test_expiry_counts_from_the_later_of_as_of_and_the_runs_local_day() -> None:
    # A fixed business date run weeks later (the demo, a missed day re-run): the customer
    # still gets 14 whole days from the day the email goes out, not links already expired.
    late = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)  # 8 December in Shanghai
    assert expiry_base(date(2026, 11, 23), late, SHANGHAI) == date(2026, 12, 8)
    expiry = expires_at(date(2026, 11, 23), DEFAULT_RULES, SHANGHAI, late)
    assert expiry == datetime(2026, 12, 23, 0, 0, tzinfo=SHANGHAI)
    assert not is_expired(expiry, late)
    # On time (now on as_of, or before it): as_of counts.
    on_time = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert expires_at(date(2026, 11, 23), DEFAULT_RULES, SHANGHAI, on_time) == datetime(
        2026, 12, 8, 0, 0, tzinfo=SHANGHAI
    )
    early = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    assert expiry_base(date(2026, 11, 23), early, SHANGHAI) == date(2026, 11, 23)


@pytest.mark.parametrize("survey_opt_out", [False, True])
@pytest.mark.parametrize("unsubscribed", [False, True])
@pytest.mark.parametrize("has_email", [False, True])
@pytest.mark.parametrize("kind", ["nps", "csat"])
def test_the_unreachable_shortcut_gives_the_contact_policys_reason(
    survey_opt_out: bool, unsubscribed: bool, has_email: bool, kind: str
) -> None:
    """Whatever the times, for a customer without consent or address the shortcut the IO layer
    counts with equals the full decision."""
    shortcut = unreachable_reason(opted_out=survey_opt_out or unsubscribed, has_address=has_email)
    for last in (None, NOW - timedelta(days=1)):
        changed = facts(
            survey_opt_out=survey_opt_out,
            unsubscribed=unsubscribed,
            has_email=has_email,
            email_valid=has_email,
            last_email_at=last,
            last_survey_at=last,
        )
        [outcome] = choose(
            [nps() if kind == "nps" else csat()],
            {1: changed},
            now=NOW,
            rules=DEFAULT_RULES,
            cap_days=7,
        )
        if shortcut is None:
            assert outcome.reason in (None, "contact_cap")  # the full decision is needed
        else:
            assert outcome.reason == shortcut
