from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.defaults import ensure_default_policies
from crm_db.enums import ComplaintStatus, Severity
from crm_db.models import Complaint
from crm_db.session import session_scope
from tasks.complaints.lifecycle import Intake, open_complaint
from tests.factories import make_customer, make_org

RECEIVED = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def test_complaint_commands_change_the_lifecycle_with_one_line_errors(
    sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(sqlite_engine) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        customer = make_customer(session, org)
        open_complaint(
            session,
            Intake("CP9", customer.id, org.branch.id, "发票问题", Severity.NORMAL, RECEIVED),
        )
        manager = org.branch_manager.external_id
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    reset_settings_cache()
    from crm_cli.main import app

    runner = CliRunner()
    ack = runner.invoke(
        app, ["complaint", "ack", "CP9", "--at", "2026-11-30T10:00:00+08:00", "--actor", manager]
    )
    assert ack.exit_code == 0, ack.output
    assert ack.output.strip() == "complaint CP9: acknowledged"
    moved = runner.invoke(
        app, ["complaint", "assign", "CP9", "--to", manager, "--at", "2026-11-30T10:05:00+08:00"]
    )
    assert moved.exit_code == 0, moved.output
    bad = runner.invoke(app, ["complaint", "verify", "CP9", "--at", "2026-11-30T11:00:00+08:00"])
    assert bad.exit_code == 1
    assert "complaint CP9: cannot verify from acknowledged (only from resolved)" in bad.output
    missing = runner.invoke(app, ["complaint", "ack", "CP404"])
    assert missing.exit_code == 1 and "no complaint CP404" in missing.output
    with session_scope(sqlite_engine) as session:
        stored = session.query(Complaint).one()
        assert stored.status is ComplaintStatus.ACKNOWLEDGED
        assert stored.assignee_id == org.branch_manager.id
        assert stored.acknowledged_at == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
