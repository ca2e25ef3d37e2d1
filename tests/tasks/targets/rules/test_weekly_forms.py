"""The weekly progress form's rules: which week, when it closes, what a valid form is."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tasks.targets.rules.weekly_forms import (
    MAX_TEXT,
    FormEntry,
    closes_at,
    is_open,
    missing_regions,
    rollup_week,
    validate_form,
    week_label,
    week_sunday,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_week_labels_and_their_sundays() -> None:
    assert week_label(date(2026, 12, 6)) == "2026-W49"  # a Sunday: the week it ends
    assert week_sunday("2026-W49") == date(2026, 12, 6)
    assert week_sunday("2026-W53") == date(2027, 1, 3)  # 2026 has 53 ISO weeks
    for bad in ("2025-W53", "2026-W00", "2026-49", "2026-W4", " 2026-W49", "２026-W49"):
        assert week_sunday(bad) is None


def test_a_week_closes_at_the_end_of_its_sunday_in_the_crm_zone() -> None:
    closing = closes_at("2026-W49", SHANGHAI)
    assert closing == datetime(2026, 12, 6, 16, 0, tzinfo=UTC)  # Monday 00:00 in Shanghai
    assert is_open("2026-W49", SHANGHAI, datetime(2026, 12, 6, 15, 59, 59, tzinfo=UTC))
    assert not is_open("2026-W49", SHANGHAI, closing)
    assert not is_open("not-a-week", SHANGHAI, closing)
    with pytest.raises(ValueError, match="ISO week"):
        closes_at("2026-W99", SHANGHAI)


@pytest.mark.parametrize(
    ("as_of", "week"),
    [
        (date(2026, 12, 7), "2026-W49"),  # Monday: the week that ended yesterday
        (date(2026, 12, 6), "2026-W48"),  # Sunday: that week is still open
        (date(2026, 12, 12), "2026-W49"),  # Saturday
        (date(2027, 1, 4), "2026-W53"),
    ],
)
def test_the_rollup_reports_the_last_week_whose_sunday_has_passed(as_of: date, week: str) -> None:
    assert rollup_week(as_of) == week


def test_a_valid_form_is_stored_normalised() -> None:
    entry = validate_form(
        prospects_contacted=" 12 ", obstacles="车队\r\n\r\n\r\n价格\u202e敏感  ", next_week_plan=""
    )
    assert entry == FormEntry(12, "车队\n\n价格敏感", None)
    assert validate_form(prospects_contacted=0) == FormEntry(0)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "missing"),
        ("  ", "missing"),
        ("-1", "invalid"),
        ("1.5", "invalid"),
        ("１２", "invalid"),  # full-width digits
        ("123456", "invalid"),
        (True, "invalid"),
        (-3, "range"),
        (100_000, "range"),
    ],
)
def test_prospects_must_be_a_whole_number_in_range(raw: str | int | None, code: str) -> None:
    problems = validate_form(prospects_contacted=raw)
    assert isinstance(problems, list)
    assert [(p.field, p.code) for p in problems] == [("prospects_contacted", code)]


def test_every_problem_is_named_and_texts_are_bounded() -> None:
    problems = validate_form(
        prospects_contacted="x", obstacles="阻" * (MAX_TEXT + 1), next_week_plan="计" * MAX_TEXT
    )
    assert isinstance(problems, list)
    assert [(p.field, p.code) for p in problems] == [
        ("prospects_contacted", "invalid"),
        ("obstacles", "too_long"),
    ]
    assert all("阻" not in p.message for p in problems)  # never repeats what was typed


def test_missing_regions_keep_the_given_order() -> None:
    assert missing_regions([3, 1, 2], {1}) == [3, 2]
    assert missing_regions([], set()) == []
