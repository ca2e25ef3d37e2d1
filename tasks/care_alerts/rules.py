"""Care alert rules (满意度闭环 and 流失预警): what a trigger raises, for whom, when the urgent
revisit falls due, and what counts as the same alert twice.

A trigger is one of: a detractor NPS answer (0-6), a low CSAT (1-2), a low product or service
rating (1-2), or a churn early warning (trailing-90-day spend below a policy share of the 90 days
before, no complaint open). Each raises one alert: an email to the account manager (and, for an
A-class customer, the region manager too) and an urgent revisit due within N working days (policy,
default 2) on the branch's calendar, through the revisit machinery.

Dedup: a survey response raises at most one alert, whatever it scored low on (its key names the
response); a churn warning at most once per customer per ``dedup_days`` (default 90), and a
re-run of the same day hits the same key.

Pure: values in (``as_of``, the organisation as ``tasks.rules.escalation_ladder.Org``, the
calendar), decisions out. ``tasks/care_alerts/alerts.py`` reads and writes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from crm_db.enums import AbcClass, CareAlertKind
from crm_db.policy_defaults import (
    CARE_URGENT_REVISIT_WORKING_DAYS,
    CHURN_DEDUP_DAYS,
    CHURN_DROP_RATIO,
    CHURN_WINDOW_DAYS,
)
from tasks.rules.calendar import WorkCalendar
from tasks.rules.escalation_ladder import Org, walk_up

NPS_DETRACTOR_MAX = 6  # NPS 0-6: detractor
LOW_SCORE_MAX = 2  # CSAT and product/service ratings 1-2: low
URGENT_REASON = "care_alert"  # revisits.reason of a care alert's urgent follow-up
_SEARCH_DAYS = 370  # a year of working days is never all taken


AlertKind = CareAlertKind  # stored in ``care_alerts.kind``


# The kinds a survey answer raises (the "here is what we did" email follows their revisit).
SURVEY_KINDS: frozenset[AlertKind] = frozenset(
    {AlertKind.DETRACTOR, AlertKind.LOW_CSAT, AlertKind.LOW_RATING}
)


class SkipReason(StrEnum):
    DUPLICATE = "duplicate"  # this response (or this customer's churn window) already alerted
    CHURN_RECENT = "churn_recent"  # a churn alert within the dedup window
    NO_RECIPIENT = "no_recipient"  # nobody reachable up the account manager's chain
    NO_ASSIGNEE = "no_assignee"  # nobody to give the urgent revisit to (no branch or manager)
    NO_CLASS = "no_class"  # unclassified: no revisit (as planning skips it), the alert stands


@dataclass(frozen=True)
class Trigger:
    """One reason to alert. ``source`` identifies what triggered it: ``response:<id>`` for a
    survey answer, ``churn:<as_of>`` for a churn window; a re-run yields the same source."""

    customer_id: int
    kind: AlertKind
    source: str
    abc_class: AbcClass | None
    score: int | None = None  # the NPS / CSAT score or the low rating
    comment: str | None = None  # the customer's words (escaped wherever shown)
    recent_fen: int | None = None  # churn: spend in the trailing window
    previous_fen: int | None = None  # churn: spend in the window before

    @property
    def key(self) -> str:
        """The alert's idempotency key: one alert per response, one per customer and churn day."""
        if self.kind is AlertKind.CHURN:
            return f"churn:customer:{self.customer_id}:{self.source}"
        return f"survey:{self.source}"


@dataclass(frozen=True)
class AlertPolicy:
    """The ``churn.*`` and ``care.*`` policy rows."""

    churn_drop_ratio: float = CHURN_DROP_RATIO.default
    churn_window_days: int = CHURN_WINDOW_DAYS.default
    churn_dedup_days: int = CHURN_DEDUP_DAYS.default
    urgent_working_days: int = CARE_URGENT_REVISIT_WORKING_DAYS.default

    def __post_init__(self) -> None:
        if not 0 < self.churn_drop_ratio < 1:
            raise ValueError(
                f"policy {CHURN_DROP_RATIO.key} must be between 0 and 1, got "
                f"{self.churn_drop_ratio}"
            )
        for setting, value in (
            (CHURN_WINDOW_DAYS, self.churn_window_days),
            (CHURN_DEDUP_DAYS, self.churn_dedup_days),
            (CARE_URGENT_REVISIT_WORKING_DAYS, self.urgent_working_days),
        ):
            if value < 1:
                raise ValueError(f"policy {setting.key} must be at least 1, got {value}")


# --- Which survey answers trigger -------------------------------------------------------------


def survey_kinds(
    *,
    nps: int | None = None,
    csat: int | None = None,
    product_rating: int | None = None,
    service_rating: int | None = None,
) -> list[AlertKind]:
    """The kinds a survey answer triggers, most serious first (empty: none). A response raises
    one alert whatever it scored low on; its kind is the first of these."""
    kinds: list[AlertKind] = []
    if nps is not None and nps <= NPS_DETRACTOR_MAX:
        kinds.append(AlertKind.DETRACTOR)
    if csat is not None and csat <= LOW_SCORE_MAX:
        kinds.append(AlertKind.LOW_CSAT)
    if any(r is not None and r <= LOW_SCORE_MAX for r in (product_rating, service_rating)):
        kinds.append(AlertKind.LOW_RATING)
    return kinds


def survey_trigger(
    *,
    response_id: int,
    customer_id: int,
    abc_class: AbcClass | None,
    nps: int | None = None,
    csat: int | None = None,
    product_rating: int | None = None,
    service_rating: int | None = None,
    comment: str | None = None,
) -> Trigger | None:
    """The one trigger a survey response raises (``None``: it scored nothing low), for
    ``raise_alerts``: its kind is the most serious it scored low on, its score that score."""
    kinds = survey_kinds(
        nps=nps, csat=csat, product_rating=product_rating, service_rating=service_rating
    )
    if not kinds:
        return None
    kind = kinds[0]
    if kind is AlertKind.DETRACTOR:
        score = nps
    elif kind is AlertKind.LOW_CSAT:
        score = csat
    else:
        low = [r for r in (product_rating, service_rating) if r is not None]
        score = min(low)
    return Trigger(customer_id, kind, f"response:{response_id}", abc_class, score, comment)


# --- Churn ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnWindows:
    """``recent`` is ``(recent_start, as_of]``, ``previous`` ``(previous_start, recent_start]``:
    both ``window_days`` long, by transaction date."""

    previous_start: date
    recent_start: date
    as_of: date


def churn_windows(as_of: date, window_days: int) -> ChurnWindows:
    recent_start = as_of - timedelta(days=window_days)
    return ChurnWindows(recent_start - timedelta(days=window_days), recent_start, as_of)


def churn_triggered(
    recent_fen: int, previous_fen: int, *, drop_ratio: float, open_complaints: int
) -> bool:
    """Spend in the trailing window fell below ``drop_ratio`` of the window before (default 0.5:
    fallen by more than half) and no complaint is open (an open complaint is already being
    handled). A customer with no spend before has nothing to fall from."""
    if previous_fen <= 0 or open_complaints > 0:
        return False
    return recent_fen < previous_fen * drop_ratio


def churn_allowed(last_churn_on: date | None, as_of: date, dedup_days: int) -> bool:
    """At most one churn alert per customer per ``dedup_days``: the last one (its ``as_of``) must
    be at least that many days before. ``as_of`` itself is the re-run, stopped by the key."""
    return last_churn_on is None or (as_of - last_churn_on).days >= dedup_days


# --- Recipients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipients:
    staff_ids: tuple[int, ...]  # in order: the account manager's stand-in, then the region's
    reasons: tuple[str, ...] = ()  # who was skipped and why (ids only)


def recipients(
    *,
    abc_class: AbcClass | None,
    account_manager_id: int | None,
    branch_manager_id: int | None,
    region_manager_id: int | None,
    org: Org,
) -> Recipients:
    """The account manager; if they cannot receive it (left, no address), the first reachable
    person up their reporting chain; without an account manager, the branch manager (or up
    theirs). An A-class customer's alert also goes to the region manager (or up their chain).
    Nobody twice."""
    found: list[int] = []
    reasons: list[str] = []

    def reach(start: int | None, post: str) -> None:
        if start is None:
            reasons.append(f"no {post}")
            return
        who, why = walk_up(start, org.people)
        if why:
            reasons.append(why)
        if who is not None and who not in found:
            found.append(who)

    reach(account_manager_id if account_manager_id is not None else branch_manager_id, "owner")
    if abc_class is AbcClass.A:
        reach(region_manager_id, "region manager")
    return Recipients(tuple(found), tuple(reasons))


# --- The urgent revisit ------------------------------------------------------------------------


def urgent_due(as_of: date, calendar: WorkCalendar, working_days: int) -> date:
    """The urgent revisit's due date: ``working_days`` working days after ``as_of`` on the
    branch's calendar (2: an alert on Friday is due on Tuesday, a holiday week pushes it on)."""
    if working_days < 1:
        raise ValueError(f"working_days must be at least 1, got {working_days}")
    day = as_of
    for _ in range(working_days):
        day = calendar.next_working_day(day + timedelta(days=1))
    return day


def free_urgent_day(
    as_of: date, calendar: WorkCalendar, working_days: int, taken: Collection[date]
) -> date:
    """``urgent_due``'s day, or - the database allows one revisit per customer and day, and
    ``taken`` holds the customer's days after ``as_of`` - the latest free working day before it
    (still within the window), else the first free working day after it."""
    due = urgent_due(as_of, calendar, working_days)
    day = due
    while day > as_of:
        if day not in taken:
            return day
        day = calendar.previous_working_day(day - timedelta(days=1))
    day = calendar.next_working_day(due + timedelta(days=1))
    for _ in range(_SEARCH_DAYS):
        if day not in taken:
            return day
        day = calendar.next_working_day(day + timedelta(days=1))
    raise ValueError(f"no free working day for an urgent revisit within {_SEARCH_DAYS} days")


@dataclass(frozen=True)
class RevisitChange:
    """What the urgent revisit does to the customer's revisits: a new one, or the open one made
    urgent (one open revisit per customer)."""

    create: bool
    due_on: date
    planned_for: date
    channel_to_phone: bool  # an email revisit cannot be the follow-up: a call instead


def revisit_change(
    *,
    urgent_on: date,
    open_due_on: date | None,
    open_planned_for: date | None,
    open_is_email: bool,
) -> RevisitChange:
    """No open revisit: a new one due and planned on ``urgent_on``. An open one: brought forward
    to ``urgent_on`` if later (due and planned day); an overdue one keeps its date (and keeps
    escalating); an email-channel one becomes a call."""
    if open_due_on is None:
        return RevisitChange(True, urgent_on, urgent_on, channel_to_phone=False)
    due = min(open_due_on, urgent_on)
    planned = min(open_planned_for or open_due_on, urgent_on)
    return RevisitChange(False, due, max(planned, due), channel_to_phone=open_is_email)


# --- The loop, measured ---------------------------------------------------------------------


def followed_up_in_time(completed_on: date | None, follow_up_due: date | None) -> bool:
    """Whether an alert was followed up in time: its revisit completed (local date) by the
    deadline. Not completed, or no revisit (nobody to assign): not in time."""
    return completed_on is not None and follow_up_due is not None and completed_on <= follow_up_due


def share_pct(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent, one decimal; ``None`` without a whole."""
    return None if whole <= 0 else round(part * 100.0 / whole, 1)


# --- Dedup within a batch -------------------------------------------------------------------


def dedup(triggers: Sequence[Trigger]) -> tuple[list[Trigger], int]:
    """One trigger per key (the first, i.e. the most serious when a caller lists a response's
    kinds in ``survey_kinds`` order), and how many were dropped."""
    seen: set[str] = set()
    kept: list[Trigger] = []
    for trigger in triggers:
        if trigger.key in seen:
            continue
        seen.add(trigger.key)
        kept.append(trigger)
    return kept, len(triggers) - len(kept)


__all__ = [
    "LOW_SCORE_MAX",
    "NPS_DETRACTOR_MAX",
    "SURVEY_KINDS",
    "URGENT_REASON",
    "AlertKind",
    "AlertPolicy",
    "ChurnWindows",
    "Recipients",
    "RevisitChange",
    "SkipReason",
    "Trigger",
    "churn_allowed",
    "churn_triggered",
    "churn_windows",
    "dedup",
    "followed_up_in_time",
    "free_urgent_day",
    "share_pct",
    "recipients",
    "revisit_change",
    "survey_kinds",
    "survey_trigger",
    "urgent_due",
]
