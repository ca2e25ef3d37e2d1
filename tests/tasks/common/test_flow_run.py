"""The one way a flow ends (tasks/common/flow_run.py), on real Prefect runs and a real database:
ledger row, artifact, warnings, summary; a failure closes the ledger as failed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from sqlalchemy import Engine, select

from crm_core.settings import reset_settings_cache
from crm_db.defaults import ensure_default_policies
from crm_db.enums import RunStatus
from crm_db.models import BusinessCalendar, FlowRun
from crm_db.session import dispose_shared_engines, session_scope
from flows.run_contract import FlowSummary
from tasks.common.flow_run import flow_run

AS_OF = date(2026, 11, 23)


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _no_calendar_warnings(as_of: date) -> list[str]:
    return []


@flow(name="flow-run-probe")
def probe(dry_run: bool = False, warn: bool = False, fail: bool = False) -> FlowSummary:
    with flow_run(
        "flow_run_probe",
        AS_OF,
        {"as_of": AS_OF},
        dry_run=dry_run,
        shared_warnings=lambda as_of: [f"calendar ends soon after {as_of.isoformat()}"],
    ) as run:
        if warn:
            run.warn("3 staff members are in a cyclic management chain")
            run.warn("3 staff members are in a cyclic management chain")  # said once
        if fail:
            raise ValueError("customer 7: locale 'xx' is not supported")
        return run.finish({"done": 2}, [{"region": "EAST", "done": 2}], description="Probe")


@flow(name="flow-run-forgetful")
def forgetful() -> None:
    with flow_run(
        "flow_run_forgetful", AS_OF, {}, dry_run=False, shared_warnings=_no_calendar_warnings
    ):
        pass


def _ledger(engine: Engine, name: str) -> list[FlowRun]:
    with session_scope(engine) as session:
        return list(session.scalars(select(FlowRun).where(FlowRun.flow_name == name)))


def test_a_finished_run_completes_its_ledger_row_and_publishes_its_warnings(
    crm_db: Engine,
) -> None:
    summary = probe(warn=True)
    assert summary["status"] == "warning"
    assert summary["warnings"] == [
        "3 staff members are in a cyclic management chain",
        "calendar ends soon after 2026-11-23",
    ]
    assert summary["counts"] == {"done": 2}
    (row,) = _ledger(crm_db, "flow_run_probe")
    assert row.id == summary["ledger_run_id"]
    assert row.status is RunStatus.COMPLETED and row.counts == {"done": 2}
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
        latest = [a for a in artifact if a.key == summary["artifact_key"]]
    assert latest and latest[0].description is not None
    assert "cyclic management chain" in latest[0].description
    assert "calendar ends soon" in latest[0].description


def test_a_dry_run_writes_no_ledger_row_and_says_so(crm_db: Engine) -> None:
    summary = probe(dry_run=True)
    assert summary["dry_run"] is True and summary["ledger_run_id"] is None
    assert summary["status"] == "warning"  # the shared calendar warning still shows
    assert _ledger(crm_db, "flow_run_probe") == []


def test_a_failure_closes_the_ledger_row_as_failed_with_the_reason(crm_db: Engine) -> None:
    state = probe(fail=True, return_state=True)
    assert state.is_failed()
    (row,) = _ledger(crm_db, "flow_run_probe")
    assert row.status is RunStatus.FAILED
    assert row.error is not None and "customer 7: locale" in row.error


def test_a_flow_that_never_calls_finish_fails_instead_of_reporting_nothing(
    crm_db: Engine,
) -> None:
    state = forgetful(return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match="without calling finish"):
        state.result()
    (row,) = _ledger(crm_db, "flow_run_forgetful")
    assert row.status is RunStatus.FAILED


@flow(name="flow-run-default-warnings")
def probe_with_calendar(as_of: date) -> FlowSummary:
    with flow_run("flow_run_calendar", as_of, {"as_of": as_of}, dry_run=True) as run:
        return run.finish({}, [], description="Probe")


def test_every_flow_warns_when_the_calendar_runs_out_within_60_days(crm_db: Engine) -> None:
    """By default the bracket reads the calendars' coverage: a synced CN calendar known
    through the end of its package's last year warns in December, not in June."""
    with session_scope(crm_db) as session:
        ensure_default_policies(session)
        last = session.scalar(
            select(BusinessCalendar.covered_through).where(BusinessCalendar.code == "CN")
        )
    assert last is not None
    near = probe_with_calendar(last - timedelta(days=24))
    assert near["status"] == "warning"
    assert any("CN" in text and last.isoformat() in text for text in near["warnings"])
    far = probe_with_calendar(last - timedelta(days=200))
    assert far["status"] == "ok" and far["warnings"] == []
