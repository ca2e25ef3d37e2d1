"""The weekly progress form (周反馈表), as rules (pure).

- **Which week**: Sunday's weekly reconciliation labels its snapshot with the ISO week of its
  ``as_of`` (``rules/plan.py``); the form of that run is the form of that week. Monday's roll-up
  covers the last week whose Sunday is before its ``as_of``.
- **When a week closes**: at the end of its Sunday in the CRM time zone (the seeds: the region
  manager files it every Sunday, 每周日填写并上报). Until then a re-submission updates the
  region's one form; from then on the link is dead, and Monday's roll-up reads a closed week,
  so re-running it reports the same forms.
- **A valid form**: prospects contacted, a whole number 0-99,999 (required: 0 is an answer);
  obstacles and next week's plan, optional text of at most ``MAX_TEXT`` characters once
  normalised (``tasks.rules.forms.normalise_text``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tasks.rules.forms import FieldProblem, normalise_text

MAX_TEXT = 2000
MAX_PROSPECTS = 99_999
TEXT_FIELDS = ("obstacles", "next_week_plan")
FIELDS = ("prospects_contacted", *TEXT_FIELDS)
_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.ASCII)
_COUNT = re.compile(r"\d{1,5}", re.ASCII)  # no sign, no spaces, no full-width digits


@dataclass(frozen=True)
class FormEntry:
    prospects_contacted: int
    obstacles: str | None = None
    next_week_plan: str | None = None


def week_sunday(week: str) -> date | None:
    """The Sunday of an ISO week label (``2026-W49`` -> 2026-12-06); None when it is not one."""
    match = _WEEK.fullmatch(week) if isinstance(week, str) else None
    if match is None:
        return None
    try:
        return date.fromisocalendar(int(match[1]), int(match[2]), 7)
    except ValueError:
        return None


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def closes_at(week: str, zone: ZoneInfo) -> datetime:
    """When the week's form closes (aware UTC): midnight after its Sunday, in ``zone``."""
    sunday = week_sunday(week)
    if sunday is None:
        raise ValueError(f"not an ISO week label: {week!r}")
    local = datetime.combine(sunday + timedelta(days=1), time(0), tzinfo=zone)
    return local.astimezone(UTC)


def is_open(week: str, zone: ZoneInfo, now: datetime) -> bool:
    return week_sunday(week) is not None and now < closes_at(week, zone)


def rollup_week(as_of: date) -> str:
    """The week a roll-up on ``as_of`` reports: the last one whose Sunday is before it
    (Monday's run: the week that ended yesterday)."""
    return week_label(as_of - timedelta(days=as_of.isoweekday() % 7 or 7))


def validate_form(
    *,
    prospects_contacted: str | int | None,
    obstacles: str | None = None,
    next_week_plan: str | None = None,
) -> FormEntry | list[FieldProblem]:
    """The form as stored, or every field's problem (see the module docstring)."""
    problems: list[FieldProblem] = []
    count: int | None = None
    raw = prospects_contacted
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        problems.append(FieldProblem("prospects_contacted", "missing", "missing"))
    elif isinstance(raw, bool) or not (isinstance(raw, int) or _COUNT.fullmatch(raw.strip())):
        problems.append(FieldProblem("prospects_contacted", "invalid", "not a whole number"))
    else:
        count = int(raw) if isinstance(raw, int) else int(raw.strip())
        if not 0 <= count <= MAX_PROSPECTS:
            problems.append(
                FieldProblem("prospects_contacted", "range", f"must be 0 to {MAX_PROSPECTS}")
            )
    texts: dict[str, str | None] = {}
    for name, value in zip(TEXT_FIELDS, (obstacles, next_week_plan), strict=True):
        text = texts[name] = None if value is None else normalise_text(value)
        if text is not None and len(text) > MAX_TEXT:
            problems.append(FieldProblem(name, "too_long", f"longer than {MAX_TEXT} characters"))
    if problems or count is None:
        return problems
    return FormEntry(count, texts["obstacles"], texts["next_week_plan"])


def missing_regions(region_ids: list[int], submitted: set[int]) -> list[int]:
    """The regions (in the given order) whose form was not submitted: named in the roll-up."""
    return [region for region in region_ids if region not in submitted]


def form_key(week: str, region_id: int, staff_id: int) -> str:
    """The outbox key of a region manager's form email: once per week, region and manager. A
    re-run (even with ``resend``) sends no second link: the form shows the week's latest
    snapshot whichever run sent it."""
    return f"weekly_form:{week}:region:{region_id}:staff:{staff_id}"


def rollup_key(week: str, staff_id: int) -> str:
    """The outbox key of a marketing admin's roll-up: once per week."""
    return f"weekly_rollup:{week}:staff:{staff_id}"
