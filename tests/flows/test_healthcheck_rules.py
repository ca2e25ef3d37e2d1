"""Pure judgement of the healthcheck's probe reports."""

from __future__ import annotations

from flows.healthcheck_rules import (
    DatabaseReport,
    SmtpReport,
    database_is_usable,
    database_warnings,
    health_status,
    smtp_warnings,
    summary_counts,
    summary_rows,
)


def db(**changes: object) -> DatabaseReport:
    values: dict[str, object] = {
        "backend": "sqlite",
        "location": "/var/crm.sqlite3",
        "revision": "0002",
        "head": "0002",
        "row_counts": {"customers": 20_000, "flow_runs": 3},
        "outbox_by_status": {"sent": 10},
    }
    values.update(changes)
    return DatabaseReport(**values)  # type: ignore[arg-type]


def smtp(**changes: object) -> SmtpReport:
    values: dict[str, object] = {
        "endpoint": "127.0.0.1:8025",
        "tls_mode": "none",
        "reachable": True,
        "ehlo_ok": True,
    }
    values.update(changes)
    return SmtpReport(**values)  # type: ignore[arg-type]


def test_healthy_reports_have_no_warnings() -> None:
    assert database_warnings(db()) == []
    assert smtp_warnings(smtp()) == []
    assert smtp_warnings(smtp(tls_mode="starttls", starttls_offered=True, tls_ok=True)) == []
    assert health_status([]) == "ok"


def test_schema_behind_head_is_a_warning_naming_the_fix() -> None:
    [text] = database_warnings(db(revision="0001"))
    assert "0001" in text and "0002" in text and "crm db upgrade" in text


def test_failed_outbox_messages_are_a_warning() -> None:
    [text] = database_warnings(db(outbox_by_status={"sent": 5, "failed": 2}))
    assert text.startswith("2 outbox messages failed")


def test_missing_ledger_or_schema_makes_the_database_unusable() -> None:
    assert database_is_usable(db())
    assert not database_is_usable(db(revision=None))
    assert not database_is_usable(db(missing_tables=["flow_runs"]))
    assert database_is_usable(db(missing_tables=["targets"]))


def test_unreachable_smtp_is_one_warning() -> None:
    warnings = smtp_warnings(smtp(reachable=False, ehlo_ok=False, error="Connection refused"))
    assert warnings == [
        "SMTP server 127.0.0.1:8025 is unreachable (Connection refused): mail stays queued"
    ]
    assert health_status(warnings) == "warning"


def test_tls_problems_are_warnings() -> None:
    [no_starttls] = smtp_warnings(smtp(tls_mode="starttls", starttls_offered=False))
    assert "does not offer STARTTLS" in no_starttls
    [bad_cert] = smtp_warnings(smtp(tls_mode="implicit", tls_ok=False, error="CERTIFICATE"))
    assert "TLS handshake failed (CERTIFICATE)" in bad_cert
    [no_auth] = smtp_warnings(smtp(auth_configured=True, auth_offered=False))
    assert "offers no AUTH" in no_auth


def test_counts_and_rows_summarise_every_check() -> None:
    warnings = smtp_warnings(smtp(reachable=False))
    counts = summary_counts(db(), smtp(reachable=False), warnings)
    assert counts == {
        "rows_customers": 20_000,
        "rows_flow_runs": 3,
        "outbox_sent": 10,
        "smtp_ok": 0,
        "warnings": 1,
    }
    rows = summary_rows(db(), smtp(reachable=False), warnings)
    assert [row["check"] for row in rows] == [
        "database",
        "rows: customers",
        "rows: flow_runs",
        "outbox: sent",
        "smtp",
        "warning",
    ]
    assert rows[4]["result"] == "warning"
    assert rows[0]["result"] == "ok"
