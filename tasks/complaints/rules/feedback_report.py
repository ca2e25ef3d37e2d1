"""Who gets which part of the monthly feedback report (四个不漏: every result fed back), pure.

Each category goes to the department its ``complaint_feedback_routes`` row names; a category
without a row goes to the product department (nothing is left unreported). Each department's
report holds the company's three controls and the rows, root causes and slowest cases of its
categories; a region manager's holds everything of their region.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from crm_db.enums import StaffRole
from tasks.rules.business_time import local_instant

DEFAULT_DEPARTMENT = StaffRole.PRODUCT_DEPARTMENT
DEPARTMENTS = (StaffRole.PRODUCT_DEPARTMENT, StaffRole.OPERATIONS_DEPARTMENT)
SLOWEST = 5
TOP_CAUSES = 5


def department_of(category: str, routes: Mapping[str, StaffRole]) -> StaffRole:
    return routes.get(category, DEFAULT_DEPARTMENT)


def categories_by_department(
    categories: Iterable[str], routes: Mapping[str, StaffRole]
) -> dict[StaffRole, list[str]]:
    grouped: dict[StaffRole, list[str]] = {d: [] for d in DEPARTMENTS}
    for category in sorted(set(categories)):
        grouped.setdefault(department_of(category, routes), []).append(category)
    return grouped


@dataclass(frozen=True)
class Month:
    first: date
    start: datetime  # instants, in the company's zone
    end: datetime
    previous_start: datetime

    @property
    def label(self) -> str:
        return f"{self.first:%Y-%m}"


def month_bounds(month: str, zone: ZoneInfo) -> Month:
    """``YYYY-MM`` as instants in ``zone``: [start, end) and the previous month's start."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None
    following = (first + timedelta(days=32)).replace(day=1)
    previous = (first - timedelta(days=1)).replace(day=1)

    def at(day: date) -> datetime:
        return local_instant(datetime.combine(day, time(0)), zone)

    return Month(first, at(first), at(following), at(previous))


def report_key(month: str, staff_id: int) -> str:
    return f"complaint_feedback_report:{month}:staff:{staff_id}"


def report_key_prefix(month: str) -> str:
    """What every report key of ``month`` starts with (has the month been reported?)."""
    return f"complaint_feedback_report:{month}:"


def month_to_report(as_of: date) -> str:
    """The month a scheduled run on business date ``as_of`` reports: the last complete one
    (``YYYY-MM``). The first run after a month starts queues it; later runs find it queued."""
    return f"{as_of.replace(day=1) - timedelta(days=1):%Y-%m}"


__all__ = [
    "DEFAULT_DEPARTMENT",
    "DEPARTMENTS",
    "Month",
    "categories_by_department",
    "department_of",
    "month_bounds",
    "month_to_report",
    "report_key",
    "report_key_prefix",
]
