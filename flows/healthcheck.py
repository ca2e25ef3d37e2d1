"""``healthcheck``: is the CRM database reachable and migrated, does the SMTP server answer, and
do the business calendars know the public holidays far enough ahead?

A trivial but real flow that exercises the whole stack the other flows stand on (settings,
database, mail server, run ledger, artifacts, Prefect logging). Scheduled hourly in
``prefect.yaml``; run once with ``crm run healthcheck``.

Outcome: ``ok`` or ``warning`` (SMTP down or misconfigured, schema behind, failed outbox mail,
a calendar whose public holidays end within 60 days of ``as_of`` or before it):
the run completes and lists the warnings. The run fails when the database cannot be used at
all, since then nothing else can run either, and when a due outbox message has waited longer
than ``CRM_OUTBOX_ALERT_AGE_S`` (default 30 minutes): mail is not leaving, whatever the cause
(a failed run is what alerting watches).
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger

from crm_core.settings import get_settings
from flows.healthcheck_probes import check_calendars, check_database, check_smtp
from flows.healthcheck_rules import (
    calendar_rows,
    database_is_usable,
    database_warnings,
    health_status,
    outbox_stalled,
    smtp_warnings,
    summary_counts,
    summary_rows,
)
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.rules.calendar import calendar_warnings

FLOW_NAME = "healthcheck"


class DatabaseNotReadyError(RuntimeError):
    """The CRM database has no schema (or no run ledger): run ``crm db upgrade``."""


class OutboxStalledError(RuntimeError):
    """A due message has waited longer than ``outbox_alert_age_s``: mail is not leaving."""


@flow(
    name=FLOW_NAME,
    description="Check the CRM database (revision, row counts), the SMTP server and how far "
    "ahead the business calendars know public holidays; "
    "writes a run-ledger row and a summary artifact.",
    timeout_seconds=300,
)
def healthcheck(as_of: date | None = None, dry_run: bool = False) -> FlowSummary:
    """Check the database and the SMTP server.

    Args:
        as_of: business date recorded with the run (default: today in the CRM time zone).
        dry_run: check and report only; write no run-ledger row.
    """
    run_date = resolve_as_of(as_of)
    database = check_database()
    if not database_is_usable(database):
        raise DatabaseNotReadyError(
            f"the CRM database ({database.backend} {database.location}) has no schema "
            f"(revision {database.revision or 'none'}): run `crm db upgrade`"
        )
    with flow_run(FLOW_NAME, run_date, {"as_of": run_date}, dry_run=dry_run) as run:
        smtp = check_smtp()
        # The calendar columns it reads exist only at head; behind it, the schema warning says
        # what to do and the calendars are checked once the database is upgraded.
        coverage = check_calendars() if database.revision == database.head else {}
        calendar_problems = calendar_warnings(run_date, coverage)
        warnings = database_warnings(database) + smtp_warnings(smtp) + calendar_problems
        for text in warnings:
            run.warn(text)
        counts = summary_counts(database, smtp, warnings)
        counts["calendar_warnings"] = len(calendar_problems)
        summary = run.finish(
            counts,
            summary_rows(database, smtp, warnings, calendar_rows(run_date, coverage)),
            description=f"Healthcheck for {run_date.isoformat()}: {health_status(warnings)}",
        )
    stalled = outbox_stalled(database, max_age_s=get_settings().outbox_alert_age_s)
    get_run_logger().info(
        "database %s %s at revision %s (head %s); customers=%s; smtp %s tls=%s reachable=%s",
        database.backend,
        database.location,
        database.revision,
        database.head,
        database.row_counts.get("customers", 0),
        smtp.endpoint,
        smtp.tls_mode,
        smtp.reachable,
    )
    if stalled is not None:
        # After the ledger row and artifact: the run fails so alerts on failed runs fire.
        raise OutboxStalledError(stalled)
    return summary
