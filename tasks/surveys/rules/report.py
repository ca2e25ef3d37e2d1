"""The monthly survey report (pure): which month a run reports, which quarters its scores
compare, who gets which view, and the figures' comparison lines.

- **The month.** A scheduled run on business date ``as_of`` reports the last complete month
  (the complaint report's rule, ``month_to_report``); the first run after a month starts queues
  it, later runs find every recipient's key queued and compute nothing.
- **The periods.** Scores are stored per quarter (``survey_scores``, ``survey_loop_scores``):
  the report shows the quarter holding the month (to date, as the surveys flow last stored it)
  against the quarter before. Ratings and suggestions are the month's own answers.
- **Who.** A region manager: their region only (its line, its branches, its account managers,
  its loop). The marketing admin and the executives: the company view (company, every region,
  branch, account manager and class, the loop per region). The product and operations
  departments: the month's product and service ratings and the suggestions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from crm_db.enums import StaffRole, SurveyPeriod
from tasks.surveys.rules.periods import Period, period_of
from tasks.surveys.rules.scores import response_rate

KIND = "survey_report"
MAX_SUGGESTIONS = 50  # per department email; the total is stated beside them
MAX_SUGGESTION_CHARS = 500


class View(StrEnum):
    REGION = "region"
    COMPANY = "company"
    DEPARTMENT = "department"


_VIEWS: dict[StaffRole, View] = {
    StaffRole.REGION_MANAGER: View.REGION,
    StaffRole.MARKETING_ADMIN: View.COMPANY,
    StaffRole.EXECUTIVE: View.COMPANY,
    StaffRole.PRODUCT_DEPARTMENT: View.DEPARTMENT,
    StaffRole.OPERATIONS_DEPARTMENT: View.DEPARTMENT,
}


def view_of(role: StaffRole) -> View | None:
    """Which report a staff member of ``role`` gets (``None``: none)."""
    return _VIEWS.get(role)


def report_key(month: str, staff_id: int) -> str:
    return f"{KIND}:{month}:staff:{staff_id}"


def report_quarters(month: str) -> tuple[Period, Period]:
    """The quarter holding ``month`` (``YYYY-MM``) and the one before it."""
    first = _first_day(month)
    current = period_of(first, SurveyPeriod.QUARTER)
    return current, period_of(current.start - timedelta(days=1), SurveyPeriod.QUARTER)


def _first_day(month: str) -> date:
    try:
        return date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored score row's figures (``survey_scores``)."""

    score: float | None
    sent: int
    responses: int


def change(now: float | None, before: float | None) -> float | None:
    """The change in points, ``None`` unless both periods have a score."""
    return None if now is None or before is None else round(now - before, 1)


def comparison(
    now: Mapping[str, Stored], before: Mapping[str, Stored]
) -> dict[str, float | int | None]:
    """A group's line: NPS and CSAT this period, the previous, the change; the response rate
    of both kinds together. ``now``/``before`` map the kind (``nps``, ``csat``) to its row."""

    def score(rows: Mapping[str, Stored], kind: str) -> float | None:
        row = rows.get(kind)
        return None if row is None else row.score

    def rate(rows: Mapping[str, Stored]) -> float | None:
        return response_rate(
            sum(r.responses for r in rows.values()), sum(r.sent for r in rows.values())
        )

    line: dict[str, float | int | None] = {}
    for kind in ("nps", "csat"):
        line[kind] = score(now, kind)
        line[f"{kind}_previous"] = score(before, kind)
        line[f"{kind}_change"] = change(line[kind], line[f"{kind}_previous"])
    line["response_rate"] = rate(now)
    line["response_rate_previous"] = rate(before)
    line["responses"] = sum(r.responses for r in now.values())
    return line


def rating_figures(counts: Mapping[int, int]) -> dict[str, float | int | None]:
    """A 1-5 rating's month: answers, average (2 decimals) and % of 4-5; ``None`` without
    answers. Counts outside 1-5 are an error naming the value."""
    if any(not 1 <= value <= 5 or n < 0 for value, n in counts.items()):
        raise ValueError(f"ratings must be 1-5 with counts >= 0, got {dict(counts)}")
    answers = sum(counts.values())
    if answers == 0:
        return {"answers": 0, "average": None, "satisfied_pct": None}
    total = sum(value * n for value, n in counts.items())
    satisfied = sum(n for value, n in counts.items() if value >= 4)
    return {
        "answers": answers,
        "average": round(total / answers, 2),
        "satisfied_pct": round(100 * satisfied / answers, 1),
    }


def clip_suggestion(text: str) -> str:
    """A suggestion as the report quotes it (the template escapes it): trimmed, at most
    ``MAX_SUGGESTION_CHARS`` characters."""
    text = text.strip()
    return text if len(text) <= MAX_SUGGESTION_CHARS else text[: MAX_SUGGESTION_CHARS - 1] + "…"


__all__ = [
    "KIND",
    "MAX_SUGGESTIONS",
    "MAX_SUGGESTION_CHARS",
    "Stored",
    "View",
    "change",
    "clip_suggestion",
    "comparison",
    "rating_figures",
    "report_key",
    "report_quarters",
    "view_of",
]
