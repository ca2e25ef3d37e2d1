"""The run ledger on SQLite and PostgreSQL, plus one real Prefect run to check the link to the
Prefect flow run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum

import pytest
from prefect import flow
from sqlalchemy import Engine, select

from crm_core.settings import reset_settings_cache
from crm_db.enums import RunStatus
from crm_db.models import FlowRun
from crm_db.session import session_scope
from tasks.common.run_ledger import error_text, finish_run, ledger_parameters, ledger_run, start_run

AS_OF = date(2026, 3, 31)


@pytest.fixture
def ledger_engine(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The ledger reads the database from the settings, as in a deployment."""
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    reset_settings_cache()
    yield engine
    reset_settings_cache()


def load(engine: Engine, run_id: int) -> FlowRun:
    with session_scope(engine) as session:
        row = session.get(FlowRun, run_id)
        assert row is not None
        return row


def test_start_then_finish_records_the_run(ledger_engine: Engine) -> None:
    run_id = start_run("revisits", AS_OF, False, {"as_of": AS_OF, "region": "R-N"})

    started = load(ledger_engine, run_id)
    assert started.status == RunStatus.RUNNING
    assert started.finished_at is None
    assert started.parameters == {"as_of": "2026-03-31", "region": "R-N"}
    assert started.prefect_flow_run_id is None  # called outside any Prefect run

    finish_run(run_id, RunStatus.COMPLETED, {"planned": 120, "skipped": 3})

    row = load(ledger_engine, run_id)
    assert row.status == RunStatus.COMPLETED
    assert row.counts == {"planned": 120, "skipped": 3}
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert (row.flow_name, row.as_of, row.dry_run, row.error) == ("revisits", AS_OF, False, None)


def test_failed_run_keeps_a_masked_error(ledger_engine: Engine) -> None:
    run_id = start_run("surveys", AS_OF, True, {})
    failure = ValueError("550 mailbox zhang.san@example.com unavailable, call 13812345678")

    finish_run(run_id, "failed", {"sent": 0}, error_text(failure))

    row = load(ledger_engine, run_id)
    assert row.status == RunStatus.FAILED
    assert row.dry_run is True
    assert row.error is not None
    assert row.error.startswith("ValueError: 550 mailbox")
    assert "zhang.san@example.com" not in row.error
    assert "13812345678" not in row.error
    assert "5678" in row.error


def test_finish_refuses_running_and_unknown_rows(ledger_engine: Engine) -> None:
    run_id = start_run("complaints", AS_OF, False, {})
    with pytest.raises(ValueError, match="final status"):
        finish_run(run_id, RunStatus.RUNNING, {})
    with pytest.raises(LookupError):
        finish_run(run_id + 1000, RunStatus.COMPLETED, {})
    assert load(ledger_engine, run_id).status == RunStatus.RUNNING


def test_runs_of_the_same_flow_and_date_are_separate_rows(ledger_engine: Engine) -> None:
    first = start_run("targets", AS_OF, False, {})
    second = start_run("targets", AS_OF, False, {})
    with session_scope(ledger_engine) as session:
        ids = list(session.scalars(select(FlowRun.id).where(FlowRun.flow_name == "targets")))
    assert first != second
    assert sorted(ids) == sorted([first, second])


class Tier(StrEnum):
    A = "A"


def test_ledger_parameters_are_flat_json_without_personal_data() -> None:
    params = ledger_parameters(
        {
            "as_of": date(2026, 1, 15),
            "now": datetime(2026, 1, 15, 8, 30),
            "dry_run": False,
            "limit": 500,
            "ratio": 0.8,
            "tier": Tier.A,
            "regions": ("R-N", "R-S"),
            "note": "ask li.si@example.com",
            "none": None,
        }
    )
    assert params == {
        "as_of": "2026-01-15",
        "now": "2026-01-15T08:30:00",
        "dry_run": False,
        "limit": 500,
        "ratio": 0.8,
        "tier": "A",
        "regions": ["R-N", "R-S"],
        "note": "ask l***@ex***",
        "none": None,
    }
    with pytest.raises(TypeError, match="flat scalars"):
        ledger_parameters({"nested": {"email": "x@example.com"}})


def test_error_text_is_bounded() -> None:
    assert len(error_text(RuntimeError("x" * 10_000))) == 2000


@flow
def _ledger_probe_flow() -> int:
    run_id = start_run("probe", AS_OF, False, {"as_of": AS_OF})
    finish_run(run_id, RunStatus.COMPLETED, {"n": 1})
    return run_id


@pytest.mark.usefixtures("prefect_harness")
def test_rows_link_to_the_prefect_flow_run(ledger_engine: Engine) -> None:
    state = _ledger_probe_flow(return_state=True)

    assert state.is_completed()
    row = load(ledger_engine, state.result())
    assert row.prefect_flow_run_id == str(state.state_details.flow_run_id)
    assert row.status == RunStatus.COMPLETED
    assert row.counts == {"n": 1}


class _Boom(RuntimeError):
    pass


@flow
def _bracketed_flow(fail: bool, dry_run: bool) -> int | None:
    with ledger_run("probe", AS_OF, {"as_of": AS_OF}, dry_run=dry_run) as ledger:
        if fail:
            raise _Boom("SMTP refused li.si@example.com")
        ledger.complete({"n": 2})
    return ledger.id


def _rows(engine: Engine) -> list[FlowRun]:
    with session_scope(engine) as session:
        return list(session.scalars(select(FlowRun).order_by(FlowRun.id)))


@pytest.mark.usefixtures("prefect_harness")
def test_ledger_run_brackets_a_flow_completed_failed_or_dry(ledger_engine: Engine) -> None:
    run_id = _bracketed_flow(fail=False, dry_run=False)
    assert run_id is not None
    assert (load(ledger_engine, run_id).status, load(ledger_engine, run_id).counts) == (
        RunStatus.COMPLETED,
        {"n": 2},
    )

    state = _bracketed_flow(fail=True, dry_run=False, return_state=True)
    assert state.is_failed()
    failed = _rows(ledger_engine)[-1]
    assert failed.status == RunStatus.FAILED and failed.counts == {}
    assert failed.error is not None and failed.error.startswith("_Boom: SMTP refused")
    assert "li.si@example.com" not in failed.error  # masked

    before = len(_rows(ledger_engine))
    assert _bracketed_flow(fail=False, dry_run=True) is None
    assert _bracketed_flow(fail=True, dry_run=True, return_state=True).is_failed()
    assert len(_rows(ledger_engine)) == before  # a dry run records nothing
