"""Every policy default, defined once: the ``policy_settings`` keys (typed, with their defaults
and descriptions) and the revisit cadences.

Plain data, no database access: the pure rules take their defaults from here, ``crm_db.defaults``
writes them into a new database, and ``tasks.common.policies`` reads the database's values
back as the same types. An operator changes a policy by editing its row; the row, not this
file, is the source at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from crm_db.enums import AbcClass, ContactChannel, SurveyPeriod

T = TypeVar("T", bool, int, float, str)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One ``policy_settings`` key: its default (which also fixes the type it is read as)."""

    key: str
    default: T
    description: str


ABC_A_REVENUE_SHARE: Final = Setting(
    "abc.a_revenue_share",
    0.80,
    "A class: customers making up this share of trailing-12-month revenue (Pareto)",
)
ABC_A_MAX_CUSTOMER_SHARE: Final = Setting(
    "abc.a_max_customer_share", 0.20, "A class is capped at this share of customers (the top 20 %)"
)
ABC_C_REVENUE_TAIL_SHARE: Final = Setting(
    "abc.c_revenue_tail_share", 0.05, "C class: the customers making up the bottom share of revenue"
)
VALUE_CURRENT_HIGH_REVENUE_FEN: Final = Setting(
    "value.current_high_revenue_fen",
    5_000_000,
    "Value matrix: current value is high at or above this 12-month revenue (fen)",
)
VALUE_GROWTH_HIGH_RATIO: Final = Setting(
    "value.growth_high_ratio",
    1.10,
    "Value matrix: potential is high when the last 3 months beat the 3 before by this",
)
CONTACT_CAP_DAYS: Final = Setting(
    "contact.cap_days",
    7,
    "Contact cap: no proactive contact if the customer was contacted in the last N days",
)
REVISIT_VISITS_PER_DAY: Final = Setting(
    "revisit.capacity.visits_per_day",
    8,
    "Revisits: visits planned per account manager and working day; a backlog waits for later days",
)
REVISIT_CALLS_PER_DAY: Final = Setting(
    "revisit.capacity.calls_per_day",
    30,
    "Revisits: phone calls planned per account manager and working day",
)
REVISIT_SPREAD_WORKING_DAYS: Final = Setting(
    "revisit.capacity.window_working_days",
    20,
    "Revisits: a due revisit is planned within this many working days, over capacity if it must",
)
SURVEY_FATIGUE_DAYS: Final = Setting(
    "survey.fatigue_days", 90, "No customer is invited to a survey twice within N days"
)
SURVEY_POST_COMPLAINT_DELAY_DAYS: Final = Setting(
    "survey.post_complaint_delay_days",
    3,
    "Post-complaint satisfaction survey N working days after the complaint is resolved",
)
SURVEY_POST_COMPLAINT_WINDOW_DAYS: Final = Setting(
    "survey.post_complaint_window_days",
    14,
    "A post-complaint survey held back (contact cap, fatigue) is tried for N more days, then "
    "dropped",
)
SURVEY_REMINDER_DAYS: Final = Setting(
    "survey.reminder_days", 5, "One reminder N days after a survey invitation without a response"
)
SURVEY_EXPIRY_DAYS: Final = Setting(
    "survey.expiry_days", 14, "A survey invitation (and its links) expires after N days"
)
CHURN_DROP_RATIO: Final = Setting(
    "churn.drop_ratio",
    0.5,
    "Churn early warning when the last 90 days fall below this share of the 90 before",
)
CHURN_WINDOW_DAYS: Final = Setting(
    "churn.window_days",
    90,
    "Churn early warning: spend over the trailing N days against the N days before",
)
CHURN_DEDUP_DAYS: Final = Setting(
    "churn.dedup_days", 90, "Churn early warning: at most one alert per customer within N days"
)
CARE_URGENT_REVISIT_WORKING_DAYS: Final = Setting(
    "care.urgent_revisit_working_days",
    2,
    "Care alerts (detractor, low score, churn): the urgent revisit is due within N working days",
)
COMPLAINT_VERIFY_REMINDER_DAYS: Final = Setting(
    "complaint.verify_reminder_days",
    2,
    "Resolved but not verified (复查) after N working days: remind the branch manager, once",
)
COMPLAINT_EMAIL_MAX_ITEMS: Final = Setting(
    "complaint.email_max_items",
    20,
    "A complaint-check email to one person lists at most N complaints and says how many more",
)
TARGETS_SETTLEMENT_CUTOFF_DAY: Final = Setting(
    "targets.settlement_cutoff_day",
    25,
    "Card accounts settle on this day of the month (the seeds: the 25th)",
)
TARGETS_FLAG_LOW_PCT: Final = Setting(
    "targets.flag_low_pct", 80, "Flag a completion rate below this percentage"
)
TARGETS_FLAG_HIGH_PCT: Final = Setting(
    "targets.flag_high_pct", 120, "Flag a completion rate above this percentage"
)
TARGETS_PERIOD_RULE: Final = Setting(
    "targets.period_rule",
    "calendar",
    "Target months: calendar (1st to last day) or settlement (after one cut-off to the next)",
)
TARGETS_CUTOFF_SHIFT: Final = Setting(
    "targets.cutoff_shift",
    "earlier",
    "A settlement cut-off on a rest day moves to the previous (earlier) or next (later) workday",
)
TARGETS_CREDIT: Final = Setting(
    "targets.credit",
    "home",
    "Actuals credit the customer's home branch (home) or the selling station (station)",
)
TARGETS_AWARD_TOP_PCT: Final = Setting(
    "targets.award_top_pct",
    10,
    "Quarterly award: the top N % of the customer development leaderboard (rounded up, ties kept)",
)

SETTINGS: Final[tuple[Setting[bool] | Setting[int] | Setting[float] | Setting[str], ...]] = (
    ABC_A_REVENUE_SHARE,
    ABC_A_MAX_CUSTOMER_SHARE,
    ABC_C_REVENUE_TAIL_SHARE,
    VALUE_CURRENT_HIGH_REVENUE_FEN,
    VALUE_GROWTH_HIGH_RATIO,
    CONTACT_CAP_DAYS,
    REVISIT_VISITS_PER_DAY,
    REVISIT_CALLS_PER_DAY,
    REVISIT_SPREAD_WORKING_DAYS,
    SURVEY_FATIGUE_DAYS,
    SURVEY_POST_COMPLAINT_DELAY_DAYS,
    SURVEY_POST_COMPLAINT_WINDOW_DAYS,
    SURVEY_REMINDER_DAYS,
    SURVEY_EXPIRY_DAYS,
    CHURN_DROP_RATIO,
    CHURN_WINDOW_DAYS,
    CHURN_DEDUP_DAYS,
    CARE_URGENT_REVISIT_WORKING_DAYS,
    COMPLAINT_VERIFY_REMINDER_DAYS,
    COMPLAINT_EMAIL_MAX_ITEMS,
    TARGETS_SETTLEMENT_CUTOFF_DAY,
    TARGETS_FLAG_LOW_PCT,
    TARGETS_FLAG_HIGH_PCT,
    TARGETS_PERIOD_RULE,
    TARGETS_CUTOFF_SHIFT,
    TARGETS_CREDIT,
    TARGETS_AWARD_TOP_PCT,
)

# Keys that earlier versions wrote and nothing reads any more: ``ensure_default_policies``
# deletes them, so no operator edits a setting that has no effect. ``revisit.overdue_after_days``
# was never read: the overdue threshold is per class, ``revisit_policies.overdue_after_days``.
RETIRED_SETTINGS: Final[tuple[str, ...]] = ("revisit.overdue_after_days",)


@dataclass(frozen=True)
class RevisitDefault:
    """One default ``revisit_policies`` row (定期回访)."""

    abc_class: AbcClass
    cadence_days: int
    channel: ContactChannel
    overdue_after_days: int = 7


REVISIT_DEFAULTS: Final[tuple[RevisitDefault, ...]] = (
    RevisitDefault(AbcClass.A, 30, ContactChannel.VISIT),
    RevisitDefault(AbcClass.B, 90, ContactChannel.PHONE),
    RevisitDefault(AbcClass.C, 180, ContactChannel.EMAIL),
)


@dataclass(frozen=True)
class SurveyDefault:
    """One default ``survey_policies`` row: the periodic NPS survey of a class (满意度调查)."""

    abc_class: AbcClass
    period: SurveyPeriod
    enabled: bool = True


SURVEY_DEFAULTS: Final[tuple[SurveyDefault, ...]] = (
    SurveyDefault(AbcClass.A, SurveyPeriod.QUARTER),
    SurveyDefault(AbcClass.B, SurveyPeriod.HALF_YEAR),
    SurveyDefault(AbcClass.C, SurveyPeriod.YEAR),
)
