"""Who is invited today, who is reminded, when an invitation expires. Pure: facts in, decisions
out (the IO layer selects the facts in SQL, a chunk at a time).

- Periodic NPS: a class with an enabled policy has one wave per period (``nps:2026Q4:A``),
  spread over the period's working days (``tasks.surveys.rules.periods``); a customer is a
  candidate once their day has come, until invited in that wave.
- Post-complaint CSAT: ``delay`` working days after the day the complaint was resolved, at
  most once per complaint; held back (contact cap, fatigue) it is tried again for
  ``window_days`` after its due day, then dropped (a late survey about an old complaint reads
  as noise).
- Post-complaint wins over periodic: a customer due for both gets the CSAT; a customer with a
  resolved complaint whose survey is still to come is not sent the periodic one in between
  (``post_complaint_first``), since that would block the CSAT for the fatigue window.
- Everything else is the shared contact policy (``tasks.rules.contact_policy.decide``):
  consent, addresses, the global contact cap and the fatigue window (nobody invited twice
  within ``fatigue_days``, either kind).
- One reminder ``reminder_days`` after the invitation to a customer who has not answered; it
  belongs to the invitation, so it is subject to consent and address, not to the cap or the
  fatigue window. Expiry closes the invitation at the end of its last day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from crm_db.enums import AbcClass, SurveyKind, SurveyPeriod
from crm_db.policy_defaults import (
    SURVEY_DEFAULTS,
    SURVEY_EXPIRY_DAYS,
    SURVEY_FATIGUE_DAYS,
    SURVEY_POST_COMPLAINT_DELAY_DAYS,
    SURVEY_POST_COMPLAINT_WINDOW_DAYS,
    SURVEY_REMINDER_DAYS,
)
from tasks.rules.calendar import WorkCalendar
from tasks.rules.contact_policy import (
    ContactFacts,
    ContactRules,
    MessageKind,
    decide,
    preferred_survey,
)
from tasks.surveys.rules.periods import (
    Period,
    add_working_days,
    due_bound,
    period_of,
    periodic_campaign_code,
    working_days,
)


class PolicyError(ValueError):
    """A survey policy value that cannot work (names the setting)."""


@dataclass(frozen=True, slots=True)
class SurveyRules:
    """The survey windows (``policy_settings`` ``survey.*``) and the periodic waves per class
    (``survey_policies``; a class missing from ``periods`` is switched off)."""

    periods: Mapping[AbcClass, SurveyPeriod]
    post_complaint_delay_days: int = SURVEY_POST_COMPLAINT_DELAY_DAYS.default
    post_complaint_window_days: int = SURVEY_POST_COMPLAINT_WINDOW_DAYS.default
    reminder_days: int = SURVEY_REMINDER_DAYS.default
    expiry_days: int = SURVEY_EXPIRY_DAYS.default
    fatigue_days: int = SURVEY_FATIGUE_DAYS.default

    def __post_init__(self) -> None:
        for key, value, low in (
            (SURVEY_POST_COMPLAINT_DELAY_DAYS.key, self.post_complaint_delay_days, 0),
            (SURVEY_POST_COMPLAINT_WINDOW_DAYS.key, self.post_complaint_window_days, 0),
            (SURVEY_REMINDER_DAYS.key, self.reminder_days, 1),
            (SURVEY_EXPIRY_DAYS.key, self.expiry_days, 1),
            (SURVEY_FATIGUE_DAYS.key, self.fatigue_days, 0),
        ):
            if value < low:
                raise PolicyError(f"policy setting {key!r} is {value}, must be at least {low}")
        if self.reminder_days >= self.expiry_days:
            raise PolicyError(
                f"policy setting {SURVEY_REMINDER_DAYS.key!r} ({self.reminder_days}) must be "
                f"below {SURVEY_EXPIRY_DAYS.key!r} ({self.expiry_days}): the reminder would "
                "come after the links expired"
            )


DEFAULT_RULES = SurveyRules(periods={d.abc_class: d.period for d in SURVEY_DEFAULTS if d.enabled})


@dataclass(frozen=True, slots=True)
class Wave:
    """Today's periodic wave of one class: its campaign and which customers are due by now
    (``spread_hash < bound``)."""

    abc_class: AbcClass
    period: Period
    code: str
    starts_on: date
    days: tuple[date, ...]  # the wave's working days (from starts_on to the period's end)
    bound: int


def waves(
    as_of: date,
    rules: SurveyRules,
    calendar: WorkCalendar,
    started: Mapping[str, date] | None = None,
) -> list[Wave]:
    """The periodic waves running on ``as_of``, one per enabled class, in class order.
    ``started`` holds the day each existing wave started (by campaign code); a wave not started
    yet starts on ``as_of`` (its period's first day, or the first run's day mid-period)."""
    result = []
    for abc in AbcClass:
        kind = rules.periods.get(abc)
        if kind is None:
            continue
        period = period_of(as_of, kind)
        code = periodic_campaign_code(period, abc)
        start = (started or {}).get(code, as_of)
        days = tuple(working_days(period, calendar, start))
        result.append(Wave(abc, period, code, start, days, due_bound(as_of, days)))
    return result


@dataclass(frozen=True, slots=True)
class ResolvedWindow:
    """The local resolution days whose post-complaint survey is due on ``as_of``
    (``first..last``) and those whose survey is still to come (after ``last``)."""

    first: date
    last: date


def csat_due_on(resolved_on: date, rules: SurveyRules, calendar: WorkCalendar) -> date:
    return add_working_days(resolved_on, rules.post_complaint_delay_days, calendar)


def resolved_window(as_of: date, rules: SurveyRules, calendar: WorkCalendar) -> ResolvedWindow:
    """Which resolution days have a post-complaint survey due on ``as_of``: due on or before
    ``as_of`` and no more than ``window_days`` before it. ``csat_due_on`` never decreases with
    the resolution day, so both ends are found by walking back from ``as_of``."""
    oldest_due = as_of - timedelta(days=rules.post_complaint_window_days)
    last = as_of
    while csat_due_on(last, rules, calendar) > as_of:
        last -= timedelta(days=1)
    first = last
    while csat_due_on(first - timedelta(days=1), rules, calendar) >= oldest_due:
        first -= timedelta(days=1)
    return ResolvedWindow(first, last)


class Skip(StrEnum):
    """Why a due customer is not invited today, beside the contact policy's reasons."""

    POST_COMPLAINT_FIRST = "post_complaint_first"  # a CSAT is due or coming: it goes first
    ONE_PER_DAY = "one_survey_per_day"  # several surveys due today: one is sent


@dataclass(frozen=True, slots=True)
class Candidate:
    """One survey a customer is due for today."""

    customer_id: int
    kind: SurveyKind
    campaign_code: str
    due_on: date
    abc_class: AbcClass | None = None
    complaint_id: int | None = None
    # Periodic only: a resolved complaint of the customer's survey is due or still to come.
    post_complaint_pending: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    candidate: Candidate
    invite: bool
    reason: str | None = None  # why not (None: invite)


def _message_kind(kind: SurveyKind) -> MessageKind:
    return MessageKind.SURVEY_POST_COMPLAINT if kind is SurveyKind.CSAT else MessageKind.SURVEY


def choose(
    candidates: Iterable[Candidate],
    facts: Mapping[int, ContactFacts],
    *,
    now: datetime,
    rules: SurveyRules,
    cap_days: int,
) -> list[Outcome]:
    """Today's decision for every candidate, in customer order: at most one invitation per
    customer, the post-complaint one first (the earliest due, then the lowest complaint id);
    the others skipped with the reason. The first reason that applies counts: the contact
    policy's (consent, address, cap, fatigue), then ``post_complaint_first`` for a periodic
    survey while a post-complaint one is coming. A customer without facts (deleted since the
    selection) is skipped as ``no_email``."""
    by_customer: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        by_customer.setdefault(candidate.customer_id, []).append(candidate)
    contact = ContactRules(cap_days=cap_days, survey_fatigue_days=rules.fatigue_days)
    outcomes: list[Outcome] = []
    for customer_id in sorted(by_customer):
        due = by_customer[customer_id]
        if len(due) == 1:  # nearly everyone: nothing to choose between
            outcomes.append(_decide_one(due[0], facts.get(customer_id), now=now, rules=contact))
            continue
        preferred = preferred_survey({_message_kind(c.kind) for c in due})
        ordered = sorted(
            due,
            key=lambda c: (
                _message_kind(c.kind) is not preferred,
                c.due_on,
                c.complaint_id or 0,
                c.campaign_code,
            ),
        )
        first, rest = ordered[0], ordered[1:]
        outcomes.append(_decide_one(first, facts.get(customer_id), now=now, rules=contact))
        for other in rest:
            reason = (
                Skip.POST_COMPLAINT_FIRST
                if other.kind is SurveyKind.NPS and first.kind is SurveyKind.CSAT
                else Skip.ONE_PER_DAY
            )
            outcomes.append(Outcome(other, False, reason.value))
    return outcomes


def _decide_one(
    candidate: Candidate, facts: ContactFacts | None, *, now: datetime, rules: ContactRules
) -> Outcome:
    if facts is None:
        return Outcome(candidate, False, "no_email")
    decision = decide(facts, _message_kind(candidate.kind), now=now, rules=rules)
    if not decision.email:
        return Outcome(candidate, False, decision.reason.value if decision.reason else "no_email")
    if candidate.kind is SurveyKind.NPS and candidate.post_complaint_pending:
        return Outcome(candidate, False, Skip.POST_COMPLAINT_FIRST.value)
    return Outcome(candidate, True)


@lru_cache(maxsize=8)
def unreachable_reason(*, opted_out: bool, has_address: bool) -> str | None:
    """Why no survey can reach a customer whatever the time: no survey consent (``opted_out``:
    opted out of surveys or unsubscribed) or no deliverable address - the shared contact
    policy's reason, which for such a customer depends on nothing else; ``None`` when a survey
    could reach them (then the full decision, with the cap and fatigue, is needed). The IO
    layer counts the wave's unreachable customers with it instead of building a decision per
    row: they are held back on every run of their wave."""
    if not opted_out and has_address:
        return None
    facts = ContactFacts(
        customer_id=0,
        has_email=has_address,
        email_valid=has_address,
        has_phone=False,
        marketing_opt_out=False,
        survey_opt_out=opted_out,
        unsubscribed=False,
        last_email_at=None,
        last_survey_at=None,
    )
    decision = decide(facts, MessageKind.SURVEY, now=_EPOCH, rules=ContactRules(cap_days=0))
    assert decision.reason is not None  # consent or the address refused it
    return decision.reason.value


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def reminder_skip(facts: ContactFacts | None, *, now: datetime) -> str | None:
    """Why a reminder cannot go out (``None``: send it): consent and address only - the
    reminder belongs to an invitation the cap and the fatigue window already allowed."""
    if facts is None:
        return "no_email"
    decision = decide(
        replace(facts, last_email_at=None, last_survey_at=None),
        MessageKind.SURVEY,
        now=now,
        rules=ContactRules(cap_days=0, survey_fatigue_days=0),
    )
    return None if decision.email else (decision.reason.value if decision.reason else "no_email")


def reminder_cutoff(now: datetime, rules: SurveyRules) -> datetime:
    """Invitations written at or before this instant and not answered get their reminder."""
    return now - timedelta(days=rules.reminder_days)


def expiry_base(as_of: date, now: datetime, timezone: ZoneInfo) -> date:
    """The day an invitation's life counts from: the later of the business date and the local
    day of the run's instant. A missed day re-run later (``as_of`` in the past, ``now`` today)
    still gives the customer the whole ``expiry_days`` from the day the email goes out - the
    demo runs its fixed date today, and its links must work too."""
    return max(as_of, now.astimezone(timezone).date())


def expires_at(
    as_of: date, rules: SurveyRules, timezone: ZoneInfo, now: datetime | None = None
) -> datetime:
    """An invitation written on ``as_of`` (at ``now``) is open through the whole
    ``expiry_days``-th day after the later of the two (local time): it expires at the
    following local midnight."""
    base = as_of if now is None else expiry_base(as_of, now, timezone)
    last = base + timedelta(days=rules.expiry_days)
    return datetime.combine(last + timedelta(days=1), time(0), tzinfo=timezone)


def is_expired(expiry: datetime, now: datetime) -> bool:
    return now >= expiry


__all__ = [
    "DEFAULT_RULES",
    "Candidate",
    "Outcome",
    "PolicyError",
    "ResolvedWindow",
    "Skip",
    "SurveyRules",
    "Wave",
    "choose",
    "csat_due_on",
    "expires_at",
    "expiry_base",
    "is_expired",
    "reminder_cutoff",
    "reminder_skip",
    "unreachable_reason",
    "resolved_window",
    "waves",
]
