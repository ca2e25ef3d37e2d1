"""Care alert rules: which answers trigger, churn, recipients up the chain, the urgent due date
on the branch calendar, the open revisit made urgent, and dedup."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crm_db.enums import AbcClass
from tasks.care_alerts.rules import (
    AlertKind,
    AlertPolicy,
    Trigger,
    churn_allowed,
    churn_triggered,
    churn_windows,
    dedup,
    followed_up_in_time,
    free_urgent_day,
    recipients,
    revisit_change,
    share_pct,
    survey_kinds,
    survey_trigger,
    urgent_due,
)
from tasks.rules.calendar import WorkCalendar
from tasks.rules.escalation_ladder import Org, Person

MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)


@pytest.mark.parametrize("score", range(11))
def test_nps_detractors_are_zero_to_six(score: int) -> None:
    assert (survey_kinds(nps=score) == [AlertKind.DETRACTOR]) == (score <= 6)
    assert survey_kinds(nps=score) in ([], [AlertKind.DETRACTOR])


@pytest.mark.parametrize("score", range(1, 6))
def test_csat_and_ratings_low_are_one_and_two(score: int) -> None:
    low = score <= 2
    assert survey_kinds(csat=score) == ([AlertKind.LOW_CSAT] if low else [])
    assert survey_kinds(product_rating=score) == ([AlertKind.LOW_RATING] if low else [])
    assert survey_kinds(service_rating=score) == ([AlertKind.LOW_RATING] if low else [])


def test_a_response_low_on_everything_lists_kinds_most_serious_first() -> None:
    kinds = survey_kinds(nps=3, csat=1, product_rating=2, service_rating=1)
    assert kinds == [AlertKind.DETRACTOR, AlertKind.LOW_CSAT, AlertKind.LOW_RATING]
    assert survey_kinds() == []
    assert survey_kinds(nps=9, product_rating=5) == []


def _trigger(kind: AlertKind, source: str, customer: int = 1) -> Trigger:
    return Trigger(customer, kind, source, AbcClass.B, score=3)


def test_one_alert_per_response_whatever_it_scored_low_on() -> None:
    triggers = [
        _trigger(AlertKind.DETRACTOR, "response:7"),
        _trigger(AlertKind.LOW_RATING, "response:7"),
        _trigger(AlertKind.DETRACTOR, "response:8"),
    ]
    kept, dropped = dedup(triggers)
    assert [(t.kind, t.source) for t in kept] == [
        (AlertKind.DETRACTOR, "response:7"),
        (AlertKind.DETRACTOR, "response:8"),
    ]
    assert dropped == 1
    assert triggers[0].key == "survey:response:7"


def test_churn_key_names_customer_and_day() -> None:
    a = _trigger(AlertKind.CHURN, "2026-11-23", customer=5)
    b = _trigger(AlertKind.CHURN, "2026-11-23", customer=6)
    assert a.key == "churn:customer:5:2026-11-23"
    assert a.key != b.key
    assert dedup([a, a, b])[1] == 1


@pytest.mark.parametrize(
    ("recent", "previous", "open_complaints", "expected"),
    [
        (49, 100, 0, True),  # fell by 51 %
        (50, 100, 0, False),  # fell by exactly half: not more than the threshold
        (51, 100, 0, False),
        (0, 100, 0, True),  # stopped buying
        (0, 1, 0, True),
        (0, 0, 0, False),  # nothing to fall from
        (10, 0, 0, False),
        (200, 100, 0, False),  # grew
        (0, 100, 1, False),  # a complaint is open: already being handled
        (0, 100, 3, False),
    ],
)
def test_churn_rule(recent: int, previous: int, open_complaints: int, expected: bool) -> None:
    assert (
        churn_triggered(recent, previous, drop_ratio=0.5, open_complaints=open_complaints)
        is expected
    )


def test_churn_threshold_is_the_policy() -> None:
    assert churn_triggered(70, 100, drop_ratio=0.8, open_complaints=0)
    assert not churn_triggered(70, 100, drop_ratio=0.6, open_complaints=0)


def test_churn_windows_are_two_adjacent_spans_ending_at_as_of() -> None:
    w = churn_windows(MONDAY, 90)
    assert w.as_of == MONDAY
    assert w.recent_start == MONDAY - timedelta(days=90)
    assert w.previous_start == MONDAY - timedelta(days=180)


@pytest.mark.parametrize(
    ("last", "allowed"),
    [
        (None, True),
        (MONDAY - timedelta(days=89), False),
        (MONDAY - timedelta(days=90), True),
        (MONDAY - timedelta(days=1), False),
        (MONDAY, False),  # the same day: the re-run
        (MONDAY - timedelta(days=400), True),
    ],
)
def test_churn_at_most_once_per_customer_per_90_days(last: date | None, allowed: bool) -> None:
    assert churn_allowed(last, MONDAY, 90) is allowed


@pytest.mark.parametrize(
    "bad",
    [
        {"churn_drop_ratio": 0.0},
        {"churn_drop_ratio": 1.0},
        {"churn_window_days": 0},
        {"churn_dedup_days": 0},
        {"urgent_working_days": 0},
    ],
)
def test_policy_refuses_nonsense_naming_the_key(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="policy (churn|care)\\."):
        AlertPolicy(**bad)  # type: ignore[arg-type]


# --- recipients ------------------------------------------------------------------------------

AM, BM, RM, EXEC = 10, 20, 30, 40


def _org(**overrides: tuple[bool, bool]) -> Org:
    """AM -> BM -> RM -> EXEC; overrides set (active, reachable) per name."""
    chain = {AM: BM, BM: RM, RM: EXEC, EXEC: None}
    names = {"am": AM, "bm": BM, "rm": RM, "exec": EXEC}
    people = {}
    for name, sid in names.items():
        active, reachable = overrides.get(name, (True, True))
        people[sid] = Person(sid, active, reachable, manager_id=chain[sid])
    return Org(people, (EXEC,))


def _recipients(org: Org, abc: AbcClass | None, am: int | None = AM) -> tuple[int, ...]:
    return recipients(
        abc_class=abc,
        account_manager_id=am,
        branch_manager_id=BM,
        region_manager_id=RM,
        org=org,
    ).staff_ids


@pytest.mark.parametrize("abc", [AbcClass.B, AbcClass.C, None])
def test_non_a_class_alerts_the_account_manager_only(abc: AbcClass | None) -> None:
    assert _recipients(_org(), abc) == (AM,)


def test_a_class_adds_the_region_manager() -> None:
    assert _recipients(_org(), AbcClass.A) == (AM, RM)


def test_inactive_account_manager_is_skipped_up_the_chain() -> None:
    result = recipients(
        abc_class=AbcClass.B,
        account_manager_id=AM,
        branch_manager_id=BM,
        region_manager_id=RM,
        org=_org(am=(False, True)),
    )
    assert result.staff_ids == (BM,)
    assert result.reasons == (f"staff {AM} skipped (inactive or unreachable)",)


def test_unreachable_chain_skips_to_the_next_reachable() -> None:
    org = _org(am=(True, False), bm=(False, True))
    assert _recipients(org, AbcClass.B) == (RM,)


def test_a_class_with_account_manager_gone_up_to_the_region_manager_lists_them_once() -> None:
    org = _org(am=(False, True), bm=(False, True))
    assert _recipients(org, AbcClass.A) == (RM,)


def test_a_class_inactive_region_manager_goes_to_their_manager() -> None:
    assert _recipients(_org(rm=(False, True)), AbcClass.A) == (AM, EXEC)


def test_no_account_manager_means_the_branch_manager() -> None:
    assert _recipients(_org(), AbcClass.B, am=None) == (BM,)


def test_nobody_reachable_gives_no_recipient_with_reasons() -> None:
    org = _org(am=(False, False), bm=(False, False), rm=(False, False), exec=(False, False))
    result = recipients(
        abc_class=AbcClass.A,
        account_manager_id=AM,
        branch_manager_id=BM,
        region_manager_id=None,
        org=org,
    )
    assert result.staff_ids == ()
    assert "no region manager" in result.reasons
    assert any("no eligible manager" in r for r in result.reasons)


# --- the urgent due date ----------------------------------------------------------------------

WEEKDAYS = WorkCalendar()


@pytest.mark.parametrize(
    ("as_of", "due"),
    [
        (MONDAY, date(2026, 11, 25)),  # Mon -> Wed
        (date(2026, 11, 26), date(2026, 11, 30)),  # Thu -> Mon
        (FRIDAY, date(2026, 12, 1)),  # Fri -> Tue
        (date(2026, 11, 28), date(2026, 12, 1)),  # Sat -> Tue
        (date(2026, 11, 29), date(2026, 12, 1)),  # Sun -> Tue
    ],
)
def test_urgent_due_is_two_working_days_later(as_of: date, due: date) -> None:
    assert urgent_due(as_of, WEEKDAYS, 2) == due


def test_urgent_due_skips_holidays_and_counts_make_up_days() -> None:
    # National Day week: 1-7 October off, Saturday 10 October a make-up working day.
    holidays = {date(2026, 10, d): False for d in range(1, 8)}
    holidays[date(2026, 10, 10)] = True
    cal = WorkCalendar.from_pattern("12345", holidays)
    assert urgent_due(date(2026, 9, 30), cal, 2) == date(2026, 10, 9)
    assert urgent_due(date(2026, 10, 8), cal, 2) == date(2026, 10, 10)
    assert urgent_due(date(2026, 10, 8), cal, 1) == date(2026, 10, 9)


def test_urgent_due_on_a_24x7_calendar_is_calendar_days() -> None:
    assert urgent_due(FRIDAY, WorkCalendar.always_open(), 2) == FRIDAY + timedelta(days=2)
    with pytest.raises(ValueError):
        urgent_due(FRIDAY, WEEKDAYS, 0)


# --- the open revisit made urgent --------------------------------------------------------------

URGENT = date(2026, 11, 25)


def test_no_open_revisit_creates_one_on_the_urgent_day() -> None:
    change = revisit_change(
        urgent_on=URGENT, open_due_on=None, open_planned_for=None, open_is_email=False
    )
    assert change.create and change.due_on == change.planned_for == URGENT


def test_a_later_open_revisit_is_brought_forward() -> None:
    later = URGENT + timedelta(days=40)
    change = revisit_change(
        urgent_on=URGENT, open_due_on=later, open_planned_for=later, open_is_email=False
    )
    assert not change.create
    assert change.due_on == change.planned_for == URGENT


def test_an_overdue_open_revisit_keeps_its_date() -> None:
    overdue = URGENT - timedelta(days=10)
    change = revisit_change(
        urgent_on=URGENT, open_due_on=overdue, open_planned_for=None, open_is_email=False
    )
    assert change.due_on == change.planned_for == overdue


def test_a_deferred_plan_is_pulled_in_but_never_before_due() -> None:
    due = URGENT - timedelta(days=3)
    change = revisit_change(
        urgent_on=URGENT,
        open_due_on=due,
        open_planned_for=URGENT + timedelta(days=9),
        open_is_email=False,
    )
    assert (change.due_on, change.planned_for) == (due, URGENT)
    assert change.planned_for >= change.due_on


def test_an_email_revisit_becomes_a_call() -> None:
    change = revisit_change(
        urgent_on=URGENT, open_due_on=URGENT, open_planned_for=None, open_is_email=True
    )
    assert change.channel_to_phone and not change.create


def test_free_urgent_day_steps_back_within_the_window_then_forward() -> None:
    due = date(2026, 11, 25)
    assert free_urgent_day(MONDAY, WEEKDAYS, 2, set()) == due
    assert free_urgent_day(MONDAY, WEEKDAYS, 2, {due}) == date(2026, 11, 24)
    both = {due, date(2026, 11, 24)}
    assert free_urgent_day(MONDAY, WEEKDAYS, 2, both) == date(2026, 11, 26)
    # Friday: Tuesday is the due day, Monday the one before; the weekend is never chosen.
    assert free_urgent_day(FRIDAY, WEEKDAYS, 2, {date(2026, 12, 1)}) == date(2026, 11, 30)


def test_survey_trigger_is_one_per_response_with_its_most_serious_kind() -> None:
    assert survey_trigger(response_id=1, customer_id=2, abc_class=AbcClass.A, nps=9) is None
    detractor = survey_trigger(
        response_id=1, customer_id=2, abc_class=AbcClass.A, nps=4, service_rating=1, comment="慢"
    )
    assert detractor is not None
    assert (detractor.kind, detractor.score, detractor.key, detractor.comment) == (
        AlertKind.DETRACTOR,
        4,
        "survey:response:1",
        "慢",
    )
    rating = survey_trigger(
        response_id=5, customer_id=2, abc_class=None, csat=4, product_rating=2, service_rating=1
    )
    assert rating is not None and (rating.kind, rating.score) == (AlertKind.LOW_RATING, 1)
    csat = survey_trigger(response_id=6, customer_id=2, abc_class=None, csat=2)
    assert csat is not None and (csat.kind, csat.score) == (AlertKind.LOW_CSAT, 2)


@pytest.mark.parametrize(
    ("completed", "due", "in_time"),
    [
        (date(2026, 11, 25), date(2026, 11, 25), True),
        (date(2026, 11, 24), date(2026, 11, 25), True),
        (date(2026, 11, 26), date(2026, 11, 25), False),
        (None, date(2026, 11, 25), False),
        (date(2026, 11, 24), None, False),
    ],
)
def test_followed_up_in_time(completed: date | None, due: date | None, in_time: bool) -> None:
    assert followed_up_in_time(completed, due) is in_time


def test_share_pct() -> None:
    assert share_pct(1, 3) == 33.3
    assert share_pct(0, 0) is None
    assert share_pct(2, 2) == 100.0
