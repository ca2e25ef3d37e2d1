"""The healthcheck flow, run for real: Prefect test API, migrated SQLite, aiosmtpd on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from crm_cli.main import app
from crm_db.enums import RunStatus
from crm_db.models import FlowRun, Region
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from flows.healthcheck import healthcheck
from flows.run_contract import FlowSummary
from tests.flows.conftest import SmtpCapture, use_smtp
from tests.support.outbox_data import queue_customers

pytestmark = pytest.mark.usefixtures("prefect_harness")

AS_OF = date(2026, 1, 15)


def run_healthcheck(**parameters: Any) -> tuple[FlowSummary, UUID]:
    state = healthcheck(return_state=True, **parameters)
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return state.result(), flow_run_id


def ledger_rows(engine: Engine) -> list[FlowRun]:
    with session_scope(engine) as session:
        return list(session.scalars(select(FlowRun).order_by(FlowRun.id)))


def summary_artifact(flow_run_id: UUID) -> Any:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["healthcheck-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    assert len(artifacts) == 1
    return artifacts[0]


def artifact_checks(artifact: Any) -> dict[str, dict[str, Any]]:
    # A table artifact's data comes back from the API as the JSON text of its rows.
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return {row["check"]: row for row in rows}


def test_healthy_run_writes_ledger_row_and_artifact(
    crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, smtp_capture.port)
    with session_scope(crm_env) as session:
        session.add(Region(code="R-N", name="North"))

    summary, flow_run_id = run_healthcheck(as_of=AS_OF)

    assert summary["status"] == "ok", summary["warnings"]
    assert summary["warnings"] == []
    assert summary["counts"]["rows_regions"] == 1
    assert summary["counts"]["rows_customers"] == 0
    assert summary["counts"]["smtp_ok"] == 1
    assert len(smtp_capture.handler.ehlo_names) == 1  # a real EHLO reached the server

    [row] = ledger_rows(crm_env)
    assert row.id == summary["ledger_run_id"]
    assert (row.flow_name, row.as_of, row.dry_run) == ("healthcheck", AS_OF, False)
    assert row.status == RunStatus.COMPLETED
    assert row.parameters == {"as_of": "2026-01-15"}
    assert row.counts == summary["counts"]
    assert row.prefect_flow_run_id == str(flow_run_id)
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.error is None

    artifact = summary_artifact(flow_run_id)
    assert artifact.type == "table"
    checks = artifact_checks(artifact)
    assert checks["smtp"]["result"] == "ok"
    assert checks["database"]["result"] == "ok"
    assert checks["rows: regions"]["detail"] == "1"
    assert "2026-01-15" in artifact.description


def test_dry_run_writes_no_ledger_row_but_reports(
    crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, smtp_capture.port)

    summary, flow_run_id = run_healthcheck(as_of=AS_OF, dry_run=True)

    assert summary["dry_run"] is True
    assert summary["ledger_run_id"] is None
    assert ledger_rows(crm_env) == []
    assert "dry run" in summary_artifact(flow_run_id).description


def test_smtp_down_is_a_warning_not_a_failure(crm_env: Engine) -> None:
    # crm_env points SMTP at a free port where nothing listens.
    summary, flow_run_id = run_healthcheck(as_of=AS_OF)

    assert summary["status"] == "warning"
    assert summary["counts"]["smtp_ok"] == 0
    assert summary["counts"]["warnings"] == 1
    assert "unreachable" in summary["warnings"][0]
    [row] = ledger_rows(crm_env)
    assert row.status == RunStatus.COMPLETED
    assert row.counts["smtp_ok"] == 0
    checks = artifact_checks(summary_artifact(flow_run_id))
    assert checks["smtp"]["result"] == "warning"


def test_starttls_required_but_not_offered_is_reported(
    crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, smtp_capture.port, tls="starttls")  # the capture offers no STARTTLS

    summary, _ = run_healthcheck(as_of=AS_OF, dry_run=True)

    assert summary["status"] == "warning"
    assert any("does not offer STARTTLS" in text for text in summary["warnings"])


def test_database_without_schema_fails_the_run(
    crm_env: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_core.settings import reset_settings_cache

    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    reset_settings_cache()

    state = healthcheck(as_of=AS_OF, return_state=True)

    assert state.is_failed()
    assert "crm db upgrade" in str(state.result(raise_on_failure=False))


def test_crm_run_healthcheck_prints_summary(
    crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, smtp_capture.port)

    result = CliRunner().invoke(app, ["run", "healthcheck", "--as-of", "2026-01-15"])

    assert result.exit_code == 0, result.output
    assert "healthcheck as of 2026-01-15: ok" in result.output
    [row] = ledger_rows(crm_env)
    assert f"Run ledger: flow_runs.id={row.id}" in result.output
    assert "healthcheck-summary" in result.output


def test_crm_run_dry_run_flag(
    crm_env: Engine, smtp_capture: SmtpCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_smtp(monkeypatch, smtp_capture.port)

    result = CliRunner().invoke(app, ["run", "healthcheck", "--as-of", "2026-01-15", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "(dry run): ok" in result.output
    assert ledger_rows(crm_env) == []


def test_crm_run_unknown_flow_lists_known_flows(crm_env: Engine) -> None:
    result = CliRunner().invoke(app, ["run", "no-such-flow"])

    assert result.exit_code == 2
    assert "unknown flow 'no-such-flow'" in result.output
    assert "healthcheck" in result.output
    assert ledger_rows(crm_env) == []


def test_crm_run_failed_flow_exits_non_zero(
    crm_env: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_core.settings import reset_settings_cache

    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    reset_settings_cache()

    result = CliRunner().invoke(app, ["run", "healthcheck"])

    # The database is checked before the run starts; `crm` (crm_cli.main.main) prints this one
    # line and exits 1 (tests/crm_cli/test_error_lines.py runs the real command).
    assert result.exit_code == 1
    assert "no database at" in str(result.exception)
    assert "crm db upgrade" in str(result.exception)


@pytest.mark.postgres
def test_healthcheck_on_postgresql(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_core.settings import reset_settings_cache

    monkeypatch.setenv("CRM_DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SMTP_PORT", "1")  # nothing listens on port 1
    monkeypatch.setenv("CRM_SMTP_TLS", "none")
    reset_settings_cache()

    summary, flow_run_id = run_healthcheck(as_of=AS_OF)

    assert summary["counts"]["rows_flow_runs"] == 0
    [row] = ledger_rows(pg_engine)
    assert row.prefect_flow_run_id == str(flow_run_id)
    assert row.counts == summary["counts"]
    database = artifact_checks(summary_artifact(flow_run_id))["database"]
    assert database["detail"].startswith(f"postgresql 127.0.0.1:5432/{pg_engine.url.database}")


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_the_healthcheck_trusts_the_ca_file_as_delivery_does(
    crm_env: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A self-signed relay certificate trusted through CRM_SMTP_CA_FILE: healthy in both TLS
    modes (implicit TLS is not "unreachable")."""
    from tests.support.smtp_servers import make_certificate, running_server

    cert = make_certificate(tmp_path)
    tls = {"tls_context": cert.server_context()} if mode == "starttls" else {}
    implicit = {"implicit_tls_context": cert.server_context()} if mode == "implicit" else {}
    with running_server(**tls, **implicit) as relay:
        monkeypatch.setenv("CRM_SMTP_CA_FILE", str(cert.cert_file))
        use_smtp(monkeypatch, relay.port, tls=mode)
        summary, _ = run_healthcheck(as_of=AS_OF, dry_run=True)

        monkeypatch.delenv("CRM_SMTP_CA_FILE")
        use_smtp(monkeypatch, relay.port, tls=mode)
        untrusted, _ = run_healthcheck(as_of=AS_OF, dry_run=True)

    assert summary["counts"]["smtp_ok"] == 1, summary["warnings"]
    assert not any("SMTP" in text for text in summary["warnings"])
    assert untrusted["counts"]["smtp_ok"] == 0
    assert any("CRM_SMTP_CA_FILE" in text for text in untrusted["warnings"])


def test_a_tls_mode_that_does_not_fit_the_port_says_so(
    crm_env: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.smtp_servers import make_certificate, running_server

    cert = make_certificate(tmp_path)
    monkeypatch.setenv("CRM_SMTP_CA_FILE", str(cert.cert_file))
    monkeypatch.setenv("CRM_SMTP_TIMEOUT_S", "1")
    with (
        running_server() as plain,
        running_server(implicit_tls_context=cert.server_context()) as implicit,
    ):
        use_smtp(monkeypatch, plain.port, tls="implicit")
        implicit_on_plain, _ = run_healthcheck(as_of=AS_OF, dry_run=True)
        use_smtp(monkeypatch, implicit.port, tls="starttls")
        starttls_on_implicit, _ = run_healthcheck(as_of=AS_OF, dry_run=True)

    [warning] = [t for t in implicit_on_plain["warnings"] if "SMTP" in t]
    assert f"port {plain.port} is not an implicit-TLS port" in warning
    assert "CRM_SMTP_TLS=starttls" in warning
    [warning] = [t for t in starttls_on_implicit["warnings"] if "SMTP" in t]
    assert "no SMTP greeting" in warning and "set CRM_SMTP_TLS=implicit" in warning


def test_a_due_message_waiting_past_the_threshold_fails_the_run(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite and PostgreSQL; SMTP points nowhere (a real outage keeps mail waiting).
    from crm_core.settings import reset_settings_cache

    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SMTP_PORT", "1")
    monkeypatch.setenv("CRM_SMTP_TLS", "none")
    reset_settings_cache()
    queue_customers(engine, 2, now=utcnow() - timedelta(minutes=45))

    state = healthcheck(return_state=True, as_of=AS_OF)

    assert state.is_failed(), state
    assert "oldest due message has waited 45 min" in (state.message or "")
    assert "CRM_OUTBOX_ALERT_AGE_S=1800" in (state.message or "")
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(flow_run_id).state
    assert stored is not None and stored.is_failed()
    [row] = ledger_rows(engine)  # the report is still written
    assert row.counts is not None and row.counts["outbox_pending"] == 2

    # Under the threshold (a setting) the same outbox is only reported.
    monkeypatch.setenv("CRM_OUTBOX_ALERT_AGE_S", str(3600))
    reset_settings_cache()
    summary, _ = run_healthcheck(as_of=AS_OF)
    assert summary["counts"]["outbox_pending"] == 2
    dispose_shared_engines()
    reset_settings_cache()
