"""Survey periods and the spreading of a wave: which period a day falls in (``2026Q4``,
``2026H2``, ``2026``), the campaign codes (``nps:2026Q4:A``, ``csat:2026-12``), and on which
working day of its period each customer is invited.

A wave is spread evenly over the working days of its period: each customer gets a fixed
position (a multiplicative hash of the customer id, so the same customer lands on the same
relative day of every period and a re-run picks the same day); the run for ``as_of`` invites
every customer whose day has come (the first ``k`` working days of the period), so a day the
flow did not run, or a customer held back by the contact cap, is caught up on the next run. A
wave first run mid-period (a new install) spreads over the working days left, from the day it
started (``survey_campaigns.starts_on``), instead of sending the backlog at once.
The hash is integer arithmetic the database can do too (``spread_hash_sql``): the selection
takes the due customers in SQL with one comparison, ``hash < due_bound``.

Pure: no IO; the calendar comes in as a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from crm_db.enums import AbcClass, SurveyKind, SurveyPeriod
from tasks.rules.calendar import WorkCalendar

# Knuth's multiplicative hash (2^32 / golden ratio): consecutive ids spread over the period.
SPREAD_MULTIPLIER = 2_654_435_761
SPREAD_MODULUS = 1 << 32


@dataclass(frozen=True, slots=True)
class Period:
    code: str  # 2026Q4, 2026H2, 2026
    start: date
    end: date  # inclusive


def period_of(day: date, period: SurveyPeriod) -> Period:
    """The period of ``period``'s length that ``day`` falls in."""
    if period is SurveyPeriod.QUARTER:
        quarter = (day.month - 1) // 3
        start = date(day.year, quarter * 3 + 1, 1)
        end = _month_end(date(day.year, quarter * 3 + 3, 1))
        return Period(f"{day.year}Q{quarter + 1}", start, end)
    if period is SurveyPeriod.HALF_YEAR:
        half = (day.month - 1) // 6
        start = date(day.year, half * 6 + 1, 1)
        end = _month_end(date(day.year, half * 6 + 6, 1))
        return Period(f"{day.year}H{half + 1}", start, end)
    return Period(str(day.year), date(day.year, 1, 1), date(day.year, 12, 31))


def _month_end(first: date) -> date:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return following - timedelta(days=1)


def periodic_campaign_code(period: Period, abc_class: AbcClass) -> str:
    return f"{SurveyKind.NPS.value}:{period.code}:{abc_class.value}"


def post_complaint_campaign(day: date) -> tuple[str, str]:
    """The post-complaint campaign of invitations written on ``day``: (code, period)."""
    month = day.strftime("%Y-%m")
    return f"{SurveyKind.CSAT.value}:{month}", month


def working_days(period: Period, calendar: WorkCalendar, start: date | None = None) -> list[date]:
    """The working days of ``period`` from ``start`` (default: the period's first day); a span
    without any (a calendar with no working day in it) counts every day, so a wave always has
    somewhere to go."""
    first = min(max(start or period.start, period.start), period.end)
    days = [first + timedelta(days=n) for n in range((period.end - first).days + 1)]
    working = [day for day in days if calendar.is_working_day(day)]
    return working or days


def spread_hash(customer_id: int) -> int:
    """The customer's fixed position in every wave, in ``[0, 2^32)``."""
    return (customer_id * SPREAD_MULTIPLIER) % SPREAD_MODULUS


def spread_hash_sql(column: str) -> str:
    """``spread_hash`` as SQL on both backends (64-bit integer arithmetic; ids < 2^31)."""
    return f"((CAST({column} AS BIGINT) * {SPREAD_MULTIPLIER}) % {SPREAD_MODULUS})"


def spread_index(customer_id: int, days: int) -> int:
    """Which of a period's ``days`` working days (0-based) the customer is invited on."""
    if days < 1:
        raise ValueError(f"a period needs at least one day, got {days}")
    return spread_hash(customer_id) * days // SPREAD_MODULUS


def spread_day(customer_id: int, days: Sequence[date]) -> date:
    return days[spread_index(customer_id, len(days))]


def due_bound(as_of: date, days: Sequence[date]) -> int:
    """Customers with ``spread_hash < due_bound`` are due by ``as_of``: exactly those whose
    ``spread_index`` is among the period's working days up to and including ``as_of``."""
    reached = sum(1 for day in days if day <= as_of)
    # index < reached  <=>  hash * n < reached * 2^32  <=>  hash < ceil(reached * 2^32 / n)
    return -(-reached * SPREAD_MODULUS // len(days))


def add_working_days(day: date, count: int, calendar: WorkCalendar) -> date:
    """The ``count``-th working day after ``day`` (``day`` itself for 0): a complaint resolved
    on Friday with a delay of 3 gets its survey on Wednesday."""
    if count < 0:
        raise ValueError(f"working days must not be negative, got {count}")
    current = day
    for _ in range(count):
        current = calendar.next_working_day(current + timedelta(days=1))
    return current


__all__ = [
    "Period",
    "add_working_days",
    "due_bound",
    "period_of",
    "periodic_campaign_code",
    "post_complaint_campaign",
    "spread_day",
    "spread_hash",
    "spread_hash_sql",
    "spread_index",
    "working_days",
]
