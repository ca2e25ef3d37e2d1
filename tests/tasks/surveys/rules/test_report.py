"""The survey report's rules (pure): views by role, the quarters a month compares, comparison
lines with no score as None (never 0), ratings, clipped suggestions, keys."""

from __future__ import annotations

import pytest

from crm_db.enums import StaffRole
from tasks.surveys.rules.report import (
    MAX_SUGGESTION_CHARS,
    Stored,
    View,
    change,
    clip_suggestion,
    comparison,
    rating_figures,
    report_key,
    report_quarters,
    view_of,
)


def test_views_by_role() -> None:
    assert view_of(StaffRole.REGION_MANAGER) is View.REGION
    assert view_of(StaffRole.MARKETING_ADMIN) is View.COMPANY
    assert view_of(StaffRole.EXECUTIVE) is View.COMPANY
    assert view_of(StaffRole.PRODUCT_DEPARTMENT) is View.DEPARTMENT
    assert view_of(StaffRole.OPERATIONS_DEPARTMENT) is View.DEPARTMENT
    assert view_of(StaffRole.ACCOUNT_MANAGER) is None
    assert view_of(StaffRole.BRANCH_MANAGER) is None


@pytest.mark.parametrize(
    ("month", "codes"),
    [
        ("2026-11", ("2026Q4", "2026Q3")),
        ("2026-10", ("2026Q4", "2026Q3")),
        ("2026-03", ("2026Q1", "2025Q4")),  # across the year
    ],
)
def test_a_month_compares_its_quarter_with_the_one_before(
    month: str, codes: tuple[str, str]
) -> None:
    current, previous = report_quarters(month)
    assert (current.code, previous.code) == codes


def test_a_bad_month_names_itself() -> None:
    with pytest.raises(ValueError, match="'2026-13' is not YYYY-MM"):
        report_quarters("2026-13")


def test_comparison_line() -> None:
    now = {"nps": Stored(40.0, 10, 4), "csat": Stored(80.0, 5, 5)}
    before = {"nps": Stored(25.5, 20, 2)}
    line = comparison(now, before)
    assert (line["nps"], line["nps_previous"], line["nps_change"]) == (40.0, 25.5, 14.5)
    assert (line["csat"], line["csat_previous"], line["csat_change"]) == (80.0, None, None)
    assert line["response_rate"] == 60.0  # 9 of 15, both kinds together
    assert line["response_rate_previous"] == 10.0
    assert line["responses"] == 9
    empty = comparison({}, {})
    assert empty["nps"] is None and empty["response_rate"] is None and empty["responses"] == 0
    assert change(-10.0, 5.0) == -15.0 and change(None, 5.0) is None


def test_ratings() -> None:
    assert rating_figures({2: 1, 4: 1}) == {"answers": 2, "average": 3.0, "satisfied_pct": 50.0}
    assert rating_figures({}) == {"answers": 0, "average": None, "satisfied_pct": None}
    assert rating_figures({5: 2, 1: 1})["average"] == 3.67
    with pytest.raises(ValueError, match="1-5"):
        rating_figures({6: 1})


def test_suggestions_are_trimmed_and_clipped() -> None:
    assert clip_suggestion("  <b>好</b> \n") == "<b>好</b>"  # escaping is the template's
    long = clip_suggestion("字" * (MAX_SUGGESTION_CHARS + 10))
    assert len(long) == MAX_SUGGESTION_CHARS and long.endswith("…")


def test_keys() -> None:
    assert report_key("2026-11", 7) == "survey_report:2026-11:staff:7"
