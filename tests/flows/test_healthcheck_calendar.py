"""The healthcheck warns before a calendar's public holidays run out (real Prefect run, SQLite,
aiosmtpd): within 60 days of the last covered day, and past it; quiet far from it."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from crm_db.calendar_sync import package_calendar
from crm_db.defaults import ensure_default_policies
from crm_db.session import session_scope
from flows.healthcheck_rules import calendar_rows
from tasks.rules.calendar import calendar_warnings
from tests.flows.conftest import SmtpCapture, use_smtp
from tests.flows.test_healthcheck import artifact_checks, run_healthcheck, summary_artifact

LAST = package_calendar().last_day  # 2026-12-31 with chinesecalendar 1.11.0


@pytest.fixture
def synced(crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch) -> Engine:
    use_smtp(monkeypatch, smtp_capture.port)
    with session_scope(crm_env) as session:
        ensure_default_policies(session)
    return crm_env


@pytest.mark.usefixtures("prefect_harness")
def test_as_of_within_60_days_of_the_end_warns_with_the_fix(synced: Engine) -> None:
    as_of = date(LAST.year, 12, 7)  # "today" in the demo: 24 days before the end
    summary, flow_run_id = run_healthcheck(as_of=as_of)
    assert summary["status"] == "warning"
    [warning] = summary["warnings"]
    assert f"calendar CN knows public holidays only up to {LAST.isoformat()}" in warning
    assert "24 days after" in warning
    assert "upgrade chinesecalendar and run `crm calendar sync`" in warning
    assert summary["counts"]["calendar_warnings"] == 1
    checks = artifact_checks(summary_artifact(flow_run_id))
    assert checks["calendar: CN"]["result"] == "warning"
    assert LAST.isoformat() in checks["calendar: CN"]["detail"]


@pytest.mark.usefixtures("prefect_harness")
def test_far_from_the_end_is_quiet_and_past_it_warns(synced: Engine) -> None:
    summary, flow_run_id = run_healthcheck(as_of=date(LAST.year, 6, 1))
    assert summary["status"] == "ok", summary["warnings"]
    assert summary["counts"]["calendar_warnings"] == 0
    assert artifact_checks(summary_artifact(flow_run_id))["calendar: CN"]["result"] == "ok"
    past, _ = run_healthcheck(as_of=date(LAST.year + 1, 1, 10))
    [warning] = past["warnings"]
    assert "10 days before" in warning and "plain weekdays" in warning


def test_rules_cover_every_tracked_calendar() -> None:
    coverage = {"CN": date(2026, 12, 31), "CN-SZ": date(2027, 12, 31), "HK": None}
    warnings = calendar_warnings(date(2026, 12, 7), coverage)
    assert len(warnings) == 2
    assert "calendar CN " in warnings[0] and "calendar HK has no public holidays" in warnings[1]
    rows = calendar_rows(date(2026, 12, 7), coverage)
    assert [(r["check"], r["result"]) for r in rows] == [
        ("calendar: CN", "warning"),
        ("calendar: CN-SZ", "ok"),
        ("calendar: HK", "warning"),
    ]
    assert calendar_warnings(date(2026, 12, 7), {}) == []
