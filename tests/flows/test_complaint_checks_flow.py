"""The complaint_checks flow end to end: a real Prefect run on a real database (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import Engine, func, select

from crm_core.settings import reset_settings_cache
from crm_db.defaults import ensure_default_policies
from crm_db.enums import RunStatus, Severity, StaffRole
from crm_db.models import ComplaintEscalation, FlowRun, OutboxMessage
from crm_db.session import dispose_shared_engines, session_scope
from flows.complaint_checks import complaint_checks
from flows.registry import FLOWS
from tasks.complaints.lifecycle import Intake, open_complaint
from tests.factories import make_customer, make_org

RECEIVED = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_check_escalates_assigns_and_a_rerun_adds_nothing(crm_db: Engine) -> None:
    assert FLOWS["complaint_checks"] is complaint_checks
    with session_scope(crm_db) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        customer = make_customer(session, org)
        for n, assignee in enumerate((org.account_manager.id, None)):
            open_complaint(
                session,
                Intake(
                    external_id=f"F{n}",
                    customer_id=customer.id,
                    branch_id=org.branch.id,
                    category="服务态度",
                    severity=Severity.NORMAL,
                    received_at=RECEIVED,
                    assignee_id=assignee,
                ),
            )
    at = RECEIVED + timedelta(hours=20)
    summary = complaint_checks(checked_at=at)
    counts = summary["counts"]
    assert counts["assigned"] == 1
    assert counts["warnings"] == 2 and counts["escalated_warning"] == 2
    assert counts["breaches"] == 0
    assert counts["open_new"] == 2
    # One assignment email and one escalation email (both complaints, one recipient).
    assert counts["emails_complaint_assigned"] == 1
    assert counts["emails_complaint_escalation"] == 1
    assert _count(crm_db, ComplaintEscalation) == 2
    assert _count(crm_db, OutboxMessage) == 2
    assert summary["artifact_key"] == "complaint-checks-summary"
    again = complaint_checks(checked_at=at)
    assert again["counts"]["escalated_warning"] == 0 and again["counts"]["assigned"] == 0
    assert _count(crm_db, OutboxMessage) == 2
    with session_scope(crm_db) as session:
        runs = session.scalars(
            select(FlowRun.status).where(FlowRun.flow_name == "complaint_checks")
        ).all()
    assert list(runs) == [RunStatus.COMPLETED, RunStatus.COMPLETED]

    with get_client(sync_client=True) as client:
        found = [
            a for a in client.read_latest_artifacts(limit=50) if a.key == summary["artifact_key"]
        ]
    assert found and "first_response / warning" in str(found[0].data)


def test_crm_run_complaint_checks(crm_env: Engine, prefect_harness: None) -> None:
    from typer.testing import CliRunner

    from crm_cli.main import app

    with session_scope(crm_env) as session:
        ensure_default_policies(session, now=RECEIVED)
    result = CliRunner().invoke(app, ["run", "complaint_checks", "--as-of", "2026-12-01"])
    assert result.exit_code == 0, result.output
    assert "complaint_checks as of 2026-12-01" in result.output
    assert "complaint-checks-summary" in result.output
    with session_scope(crm_env) as session:
        runs = session.scalars(
            select(FlowRun.status).where(FlowRun.flow_name == "complaint_checks")
        ).all()
    assert list(runs) == [RunStatus.COMPLETED]


def test_the_feedback_report_flow_queues_last_month_once(crm_db: Engine) -> None:
    from flows.complaint_feedback_report import complaint_feedback_report
    from tests.factories import make_staff

    assert FLOWS["complaint_feedback_report"] is complaint_feedback_report
    with session_scope(crm_db) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        make_staff(session, StaffRole.PRODUCT_DEPARTMENT)
        open_complaint(
            session,
            Intake("R1", make_customer(session, org).id, org.branch.id, "发票", Severity.NORMAL,
                   RECEIVED),
        )  # fmt: skip
    first = complaint_feedback_report(as_of=date(2026, 12, 1))
    # The product department and the region manager.
    assert first["counts"]["queued"] == 2 and first["counts"]["already_reported"] == 0
    again = complaint_feedback_report(as_of=date(2026, 12, 2))
    assert again["counts"] == {"queued": 0, "already_reported": 1}
    with session_scope(crm_db) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key)).all()
    assert len(keys) == 2 and all(k.startswith("complaint_feedback_report:2026-11:") for k in keys)
