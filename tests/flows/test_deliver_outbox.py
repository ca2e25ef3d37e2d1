"""The deliver_outbox flow and the drain_outbox task, run for real: Prefect test API, a real
database (SQLite and PostgreSQL), aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect import flow, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from sqlalchemy import Engine, select

from crm_core.settings import reset_settings_cache
from crm_db.enums import OutboxStatus, RunStatus
from crm_db.models import FlowRun
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from flows.deliver_outbox import deliver_outbox, drain_outbox
from flows.run_contract import FlowSummary
from tests.support.outbox_data import (
    TEST_SECRET,
    digest_message,
    make_staff,
    outbox_rows,
    queue,
    queue_customers,
)
from tests.support.smtp_servers import FaultySink, SmtpServer, free_port, running_server

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_server(FaultySink()) as server:
        yield server


@pytest.fixture
def crm(engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """Settings (from CRM_* variables, as in production) point at this database and server."""
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SMTP_HOST", smtp.host)
    monkeypatch.setenv("CRM_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("CRM_SMTP_TLS", "none")
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
    reset_settings_cache()
    yield engine
    dispose_shared_engines()
    reset_settings_cache()


def _seed(engine: Engine) -> None:
    now = utcnow()
    queue_customers(engine, 3, now=now)
    with session_scope(engine) as session:
        staff = make_staff(session)
        message = digest_message(staff)
    queue(engine, [message], now=now)


def _run(**parameters: Any) -> tuple[FlowSummary, UUID]:
    state = deliver_outbox(return_state=True, **parameters)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return state.result(), flow_run_id


def _artifact_rows(flow_run_id: UUID) -> tuple[list[dict[str, Any]], str]:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["deliver-outbox-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert isinstance(data, list)
    return data, artifact.description or ""


def _ledger(engine: Engine) -> list[FlowRun]:
    with session_scope(engine) as session:
        return list(session.scalars(select(FlowRun).order_by(FlowRun.id)))


def test_the_flow_delivers_records_the_run_and_publishes_counts(
    crm: Engine, smtp: SmtpServer
) -> None:
    _seed(crm)

    summary, flow_run_id = _run()

    assert summary["status"] == "ok" and summary["warnings"] == []
    assert summary["counts"]["sent"] == 4 and summary["counts"]["failed"] == 0
    assert {r.status for r in outbox_rows(crm)} == {OutboxStatus.SENT}
    assert len(smtp.sink.message_ids()) == 4

    [ledger] = _ledger(crm)
    assert ledger.id == summary["ledger_run_id"] and ledger.flow_name == "deliver_outbox"
    assert ledger.status == RunStatus.COMPLETED and ledger.counts == summary["counts"]
    assert ledger.prefect_flow_run_id == str(flow_run_id)

    rows, description = _artifact_rows(flow_run_id)
    by_kind = {row["kind"]: row for row in rows}
    assert by_kind["revisit_care"]["sent"] == 3
    assert by_kind["revisit_digest"]["sent"] == 1
    assert by_kind["(all)"]["sent"] == 4 and by_kind["(all)"]["failed"] == 0
    assert "4 sent" in description
    assert "@" not in json.dumps(rows)  # counts only, no addresses

    # One Prefect task for the whole drain, never one per message.
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs()
    drains = [t for t in task_runs if t.flow_run_id == flow_run_id and "drain" in t.name]
    assert len(drains) == 1


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_dry_run_reports_what_is_due_and_sends_nothing(crm: Engine, smtp: SmtpServer) -> None:
    _seed(crm)

    summary, flow_run_id = _run(dry_run=True)

    assert summary["counts"] == {"due": 4, "due_revisit_care": 3, "due_revisit_digest": 1}
    assert summary["ledger_run_id"] is None and _ledger(crm) == []
    assert smtp.sink.received == []
    rows = outbox_rows(crm)
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in rows)
    artifact_rows, description = _artifact_rows(flow_run_id)
    assert "dry run" in description
    assert {row["kind"]: row["due"] for row in artifact_rows}["(all)"] == 4


def _failed_run(**parameters: Any) -> tuple[str, UUID]:
    state = deliver_outbox(return_state=True, **parameters)
    assert state.is_failed(), state
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(flow_run_id).state
    assert stored is not None and stored.is_failed()  # what automations on Failed see
    return state.message or "", flow_run_id


def test_an_smtp_outage_fails_the_run_and_leaves_rows_pending(
    crm: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(crm)
    monkeypatch.setenv("CRM_SMTP_PORT", str(free_port()))  # nothing listens there
    reset_settings_cache()

    message, flow_run_id = _failed_run(limit=10)

    assert "SMTP relay unreachable" in message and "\n" not in message.strip()
    rows = outbox_rows(crm)
    assert {r.status for r in rows} == {OutboxStatus.PENDING}
    assert all(r.attempts == 0 for r in rows)  # nothing reached a server
    [ledger] = _ledger(crm)  # the counts are still recorded and published
    assert ledger.counts is not None and ledger.counts["smtp_unavailable"] == 1
    _, description = _artifact_rows(flow_run_id)
    assert "stopped" in description


def test_a_relay_refusing_every_message_transiently_fails_the_run(
    crm: Engine, smtp: SmtpServer
) -> None:
    _seed(crm)
    smtp.sink.data_replies = ["451 4.3.0 try again later"] * 10

    message, flow_run_id = _failed_run()

    assert "every SMTP attempt failed transiently" in message
    rows = outbox_rows(crm)
    assert {r.status for r in rows} == {OutboxStatus.PENDING}
    assert all(r.attempts == 1 for r in rows)  # one real transaction each
    assert all((r.last_error or "").startswith("attempt 1: data: 451") for r in rows)
    artifact_rows, _ = _artifact_rows(flow_run_id)
    assert {row["kind"]: row for row in artifact_rows}["(all)"]["retried"] == 4


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_other_flows_drain_the_outbox_with_one_task_call(crm: Engine, smtp: SmtpServer) -> None:
    _seed(crm)

    @flow(name="some-flow-that-queues-mail")
    def some_flow() -> dict[str, int]:
        # ... decide, enqueue in the same transaction as the outcome rows, then:
        return drain_outbox(limit=2)

    counts = some_flow()

    assert counts["sent"] == 2 and counts["claimed"] == 2
    statuses = [r.status for r in outbox_rows(crm)]
    assert statuses.count(OutboxStatus.SENT) == 2 and statuses.count(OutboxStatus.PENDING) == 2


def test_a_relay_refusing_the_client_fails_the_run_with_one_line_and_keeps_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.postfix_replies import client_rejected

    queue_customers(engine, 4, now=utcnow())
    with running_server(client_rejected()) as relay:
        monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("CRM_SMTP_HOST", relay.host)
        monkeypatch.setenv("CRM_SMTP_PORT", str(relay.port))
        monkeypatch.setenv("CRM_SMTP_TLS", "none")
        monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
        reset_settings_cache()
        try:
            state = deliver_outbox(return_state=True)
        finally:
            dispose_shared_engines()

    assert state.is_failed()
    assert state.message is not None and "\n" not in state.message
    assert "Client host rejected" in state.message and "refuses this client host" in state.message
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in outbox_rows(engine))
    with session_scope(engine) as session:
        [ledger] = session.scalars(select(FlowRun)).all()
        assert ledger.status == RunStatus.FAILED
        assert ledger.error is not None and "Client host rejected" in ledger.error


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_full_relay_quota_defers_rows_and_the_run_counts_them(
    crm: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_SMTP_MAX_PER_HOUR", "2")
    reset_settings_cache()
    _seed(crm)  # 4 messages; the hour has room for 2

    summary, flow_run_id = _run()  # completes: a full quota is no outage

    counts = summary["counts"]
    assert (counts["sent"], counts["deferred"], counts["failed"]) == (2, 2, 0)
    assert counts["smtp_unavailable"] == 0
    assert any("relay quota full (2 per hour)" in w for w in summary["warnings"])
    rows, description = _artifact_rows(flow_run_id)
    by_kind = {row["kind"]: row for row in rows}
    assert by_kind["(all)"]["deferred"] == 2 and by_kind["(all)"]["sent"] == 2
    assert "2 deferred by the relay quota" in description
    statuses = [r.status for r in outbox_rows(crm)]
    assert sorted(statuses) == [OutboxStatus.PENDING] * 2 + [OutboxStatus.SENT] * 2
    assert len(smtp.sink.message_ids()) == 2
