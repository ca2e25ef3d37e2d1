from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tasks.common.directory import Directory
from tasks.common.run_context import RunContext, RunCounts
from tasks.rules.calendar import WorkCalendar


def test_counts_merge_per_region_and_total_as_flat_ledger_keys() -> None:
    a, b = RunCounts(), RunCounts()
    a.add("EAST", "created", 2)
    a.add("-", "skipped:no_branch")
    b.add("EAST", "created")
    b.add("WEST", "created", 4)
    a.merge(b)
    assert a.by_region["EAST"]["created"] == 3
    assert a.total("created") == 7
    assert a.totals() == {"created": 7, "skipped_no_branch": 1}


def test_local_date_follows_the_crm_time_zone_not_utc() -> None:
    ctx = RunContext(
        as_of=date(2026, 11, 23),
        now=datetime(2026, 11, 22, 17, 0, tzinfo=UTC),
        timezone=ZoneInfo("Asia/Shanghai"),
        calendar=WorkCalendar(),
        directory=Directory(),
    )
    # 17:00 UTC on the 22nd is 01:00 on the 23rd in Shanghai.
    assert ctx.local_date(ctx.now) == date(2026, 11, 23)


def test_counts_round_trip_as_plain_dicts_and_refuse_non_integers() -> None:
    counts = RunCounts()
    counts.add("EAST", "created", 2)
    counts.add("-", "skipped:no_branch")
    data = counts.as_dict()
    assert data == {"EAST": {"created": 2}, "-": {"skipped:no_branch": 1}}
    assert RunCounts.from_dict(data).totals() == counts.totals()
    with pytest.raises(TypeError, match="EAST/created"):
        RunCounts.from_dict({"EAST": {"created": "2"}})  # type: ignore[dict-item]
