"""Pure rules of the healthcheck: turn probe reports into warnings and a summary table.

No IO here: the probes (``flows.healthcheck_probes``) gather facts, these functions judge them.
A down or misconfigured SMTP server is a warning, not a failure: the flows that need mail keep
their messages in the outbox and deliver them once the server is back, so an alert is what the
operator needs, not a failed run. A database without the CRM schema is fatal (nothing can run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from flows.run_contract import HealthStatus
from tasks.rules.calendar import coverage_warning

Cell = str | int | float | bool | None  # same shape as tasks.common.artifacts.Cell, without Prefect

# Tables whose row counts an operator wants to see at a glance (not every table: the counts are
# exact COUNT(*) queries, so the big append-only ones are included only when they matter).
KEY_TABLES = (
    "regions",
    "branches",
    "staff",
    "customers",
    "transactions",
    "contact_history",
    "revisits",
    "survey_invitations",
    "complaints",
    "targets",
    "email_outbox",
    "flow_runs",
)
REQUIRED_TABLE = "flow_runs"  # the ledger: without it no flow can record a run


@dataclass(frozen=True)
class DatabaseReport:
    backend: str
    location: str  # host/database or "sqlite": never credentials
    revision: str | None
    head: str | None
    row_counts: dict[str, int] = field(default_factory=dict)
    missing_tables: list[str] = field(default_factory=list)
    outbox_by_status: dict[str, int] = field(default_factory=dict)
    latency_ms: float = 0.0
    oldest_due_s: float | None = None  # how long the longest-waiting due message has been due


@dataclass(frozen=True)
class SmtpReport:
    endpoint: str  # host:port
    tls_mode: str
    reachable: bool
    ehlo_ok: bool = False
    starttls_offered: bool | None = None
    tls_ok: bool | None = None  # None: TLS not attempted (mode "none", or not reachable)
    auth_configured: bool = False
    auth_offered: bool | None = None
    error: str | None = None  # already masked
    latency_ms: float = 0.0


def database_is_usable(report: DatabaseReport) -> bool:
    return report.revision is not None and REQUIRED_TABLE not in report.missing_tables


def database_warnings(report: DatabaseReport) -> list[str]:
    warnings: list[str] = []
    if report.revision != report.head:
        warnings.append(
            f"database schema is at revision {report.revision or 'none'} but the code expects "
            f"{report.head}: run `crm db upgrade`"
        )
    if report.missing_tables:
        warnings.append(f"database tables missing: {', '.join(sorted(report.missing_tables))}")
    failed = report.outbox_by_status.get("failed", 0)
    if failed:
        warnings.append(f"{failed} outbox messages failed permanently and need attention")
    return warnings


def outbox_stalled(report: DatabaseReport, *, max_age_s: float) -> str | None:
    """Why the run must fail, in one line, when a due message has waited longer than
    ``max_age_s`` (CRM_OUTBOX_ALERT_AGE_S): mail is not leaving, whatever the reason."""
    age = report.oldest_due_s
    if age is None or age <= max_age_s:
        return None
    return (
        f"outbox: the oldest due message has waited {age / 60:.0f} min (more than "
        f"CRM_OUTBOX_ALERT_AGE_S={max_age_s:g} s): mail is not being delivered"
    )


def smtp_warnings(report: SmtpReport) -> list[str]:
    where = f"SMTP server {report.endpoint}"
    if not report.reachable:
        return [f"{where} is unreachable ({report.error or 'no answer'}): mail stays queued"]
    warnings: list[str] = []
    if not report.ehlo_ok:
        warnings.append(f"{where} did not accept EHLO ({report.error or 'no reason given'})")
    if report.tls_mode == "starttls" and report.starttls_offered is False:
        warnings.append(f"{where} does not offer STARTTLS, which CRM_SMTP_TLS=starttls requires")
    elif report.tls_ok is False:
        warnings.append(f"{where}: TLS handshake failed ({report.error or 'unknown error'})")
    if report.auth_configured and report.auth_offered is False:
        warnings.append(f"{where} offers no AUTH although CRM_SMTP_USER is set")
    return warnings


def calendar_rows(as_of: date, coverage: Mapping[str, date | None]) -> list[dict[str, Cell]]:
    """Artifact rows: each tracked calendar and the last day its public holidays are known."""
    return [
        _row(
            f"calendar: {code}",
            "ok" if coverage_warning(as_of, last, calendar=code) is None else "warning",
            f"public holidays known through {last.isoformat() if last else 'never loaded'}",
        )
        for code, last in coverage.items()
    ]


def health_status(warnings: list[str]) -> HealthStatus:
    return "warning" if warnings else "ok"


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _row(check: str, result: str, detail: str) -> dict[str, Cell]:
    return {"check": check, "result": result, "detail": detail}


def summary_rows(
    database: DatabaseReport,
    smtp: SmtpReport,
    warnings: list[str],
    calendars: list[dict[str, Cell]] | None = None,
) -> list[dict[str, Cell]]:
    """The artifact table: one row per check and count (calendars: ``calendar_rows``), then
    one per warning."""
    rows = [
        _row(
            "database",
            "warning" if database_warnings(database) else "ok",
            f"{database.backend} {database.location}, revision {database.revision or 'none'} "
            f"(head {database.head}), {database.latency_ms:.0f} ms",
        )
    ]
    rows += [_row(f"rows: {table}", "ok", str(n)) for table, n in database.row_counts.items()]
    rows += [
        _row(f"outbox: {status}", "ok", str(n))
        for status, n in sorted(database.outbox_by_status.items())
    ]
    rows.append(
        _row(
            "smtp",
            "warning" if smtp_warnings(smtp) else "ok",
            f"{smtp.endpoint} tls={smtp.tls_mode} reachable={_yes_no(smtp.reachable)} "
            f"ehlo={_yes_no(smtp.ehlo_ok)} starttls_offered={_yes_no(smtp.starttls_offered)} "
            f"tls_ok={_yes_no(smtp.tls_ok)} auth={'set' if smtp.auth_configured else 'unset'}, "
            f"{smtp.latency_ms:.0f} ms",
        )
    )
    rows += calendars or []
    rows += [_row("warning", "warning", text) for text in warnings]
    return rows


def summary_counts(
    database: DatabaseReport, smtp: SmtpReport, warnings: list[str]
) -> dict[str, int]:
    """Flat integer counts for the run ledger and ``crm run``."""
    counts = {f"rows_{table}": count for table, count in database.row_counts.items()}
    counts.update(
        {f"outbox_{status}": n for status, n in sorted(database.outbox_by_status.items())}
    )
    counts["smtp_ok"] = int(not smtp_warnings(smtp))
    counts["warnings"] = len(warnings)
    return counts
