"""``deliver_outbox``: send every due email in the outbox (``tasks.mail.deliver``).

Runs on its own schedule (every few minutes), and other flows call ``drain_outbox`` at their
end so their emails leave at once. Either way it is one Prefect task for the whole drain (the
work is batched inside it), returns counts only, writes a run-ledger row and publishes a
summary artifact with counts per kind and outcome.

Delivery is safe to overlap: two runs at once (a schedule and a flow's drain, or two workers)
claim disjoint rows, and share the relay's limits (``CRM_SMTP_MAX_PER_*``, ``tasks.mail.quota``):
rows a full quota leaves behind are counted as ``deferred`` and wait, pending, for a later run.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed
from pydantic import Field

from crm_core.masking import mask_text
from crm_core.settings import get_settings
from crm_db.session import shared_engine
from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.artifacts import Cell
from tasks.common.flow_run import flow_run
from tasks.mail.claim import count_due
from tasks.mail.deliver import QUOTA_STOP, DeliveryReport, deliver_due
from tasks.mail.smtp_pool import SmtpConfigurationError

FLOW_NAME = "deliver_outbox"
OUTCOMES = ("sent", "retried", "unknown", "failed", "suppressed", "released", "deferred")


class DeliveryOutage(RuntimeError):
    """The relay could not be reached or refused every message: the run ends Failed (rows stay
    pending), so automations on failed runs alert whoever runs the relay."""


def _counts(report: DeliveryReport) -> dict[str, int]:
    counts = report.counts()
    stopped = report.stopped
    counts["smtp_unavailable"] = int(stopped is not None and not stopped.startswith(QUOTA_STOP))
    return counts


@task(name="drain-outbox", cache_policy=NO_CACHE)
def drain_outbox(limit: int | None = None) -> dict[str, int]:
    """Send the due outbox rows (at most ``limit``); returns counts.

    Other flows call this at their end. An SMTP outage is not an error here (rows stay pending
    for the next run; ``smtp_unavailable`` is 1; ``deliver_outbox`` itself fails); a relay that
    cannot be used as configured (no STARTTLS, refused login, untrusted certificate) raises
    ``SmtpConfigurationError``.
    """
    report = _drain(limit)
    return _counts(report)


def _drain(limit: int | None) -> DeliveryReport:
    settings = get_settings()
    report = deliver_due(shared_engine(settings.database_url), settings, now=utcnow(), limit=limit)
    logger = get_run_logger()
    logger.info(
        "outbox: %s in %.1f s%s",
        report.counts(),
        report.duration_s,
        f"; stopped early: {report.stopped}" if report.stopped else "",
    )
    return report


class RelayConfigurationError(RuntimeError):
    """The relay cannot be used as configured; the message is the one line to show."""


@task(name="drain-outbox-report", cache_policy=NO_CACHE)
def _drain_with_report(
    limit: int | None,
) -> tuple[dict[str, int], dict[str, dict[str, int]], str, str, str | None]:
    """Like ``drain_outbox``, plus counts per kind, why it stopped, the outage if the relay
    could not be used, and the configuration error if the relay refused us: returned, not
    raised, so the run ends Failed with one line instead of a traceback in its logs."""
    try:
        report = _drain(limit)
    except SmtpConfigurationError as exc:
        return {}, {}, "", "", mask_text(str(exc))
    outage = mask_text(report.outage() or "")
    return _counts(report), report.kind_counts(), mask_text(report.stopped or ""), outage, None


@task(name="count-due-outbox", cache_policy=NO_CACHE)
def _count_due() -> dict[str, int]:
    settings = get_settings()
    return count_due(shared_engine(settings.database_url), now=utcnow())


def _rows_per_kind(by_kind: dict[str, dict[str, int]]) -> list[dict[str, Cell]]:
    rows: list[dict[str, Cell]] = []
    totals = dict.fromkeys(OUTCOMES, 0)
    for kind, counts in sorted(by_kind.items()):
        row: dict[str, Cell] = {"kind": kind}
        for outcome in OUTCOMES:
            row[outcome] = counts.get(outcome, 0)
            totals[outcome] += counts.get(outcome, 0)
        rows.append(row)
    rows.append({"kind": "(all)", **totals})
    return rows


@flow(
    name=FLOW_NAME,
    description="Send the due emails of the outbox over persistent SMTP connections; retry "
    "transient failures with backoff, fail permanent ones, suppress customers who opted out.",
    timeout_seconds=3600,
)
def deliver_outbox(
    limit: Annotated[
        int | None, Field(ge=1, description="send at most this many messages (empty: all due)")
    ] = None,
    dry_run: bool = False,
    as_of: date | None = None,
) -> FlowSummary:
    """Deliver the outbox.

    Args:
        limit: at most this many messages this run (default: everything due).
        dry_run: report what is due per kind; send nothing, change nothing.
        as_of: business date recorded in the run ledger (default: today in the CRM time zone).
    """
    run_date = resolve_as_of(as_of)
    try:
        return _deliver(limit, dry_run, run_date)
    except RelayConfigurationError as exc:
        # The ledger row is already marked failed with this text; the Prefect run fails too.
        get_run_logger().error("%s", exc)
        # A flow may return a State (Prefect takes it as the run's final state); the registry
        # types every flow as returning its summary, hence the cast.
        return cast(FlowSummary, Failed(message=str(exc), data=exc))


def _deliver(limit: int | None, dry_run: bool, run_date: date) -> FlowSummary:
    parameters = {"as_of": run_date, "limit": limit}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        if dry_run:
            due = _count_due()
            counts = {"due": sum(due.values()), **{f"due_{kind}": n for kind, n in due.items()}}
            due_rows: list[dict[str, Cell]] = [
                {"kind": kind, "due": n} for kind, n in sorted(due.items())
            ]
            due_rows.append({"kind": "(all)", "due": counts["due"]})
            return run.finish(
                counts,
                due_rows,
                description=f"Outbox due now (nothing sent): {counts['due']} messages",
            )
        counts, by_kind, stopped, outage, configuration_error = _drain_with_report(limit)
        if configuration_error is not None:
            raise RelayConfigurationError(configuration_error)
        if stopped:
            run.warn(f"delivery stopped early, rows left pending: {stopped}")
        if counts["failed"]:
            run.warn(f"{counts['failed']} messages failed permanently (crm outbox status)")
        if counts["unknown"]:
            run.warn(
                f"{counts['unknown']} messages got no reply after their data; each is retried "
                "once after a long delay (crm outbox status)"
            )
        summary = run.finish(
            counts,
            _rows_per_kind(by_kind),
            description=f"Outbox delivery: {counts['sent']} sent, {counts['retried']} to retry, "
            f"{counts['failed']} failed, {counts['suppressed']} suppressed"
            + (f"; {counts['unknown']} outcome unknown" if counts["unknown"] else "")
            + (
                f"; {counts['deferred']} deferred by the relay quota"
                if counts.get("deferred")
                else ""
            )
            + (f"; stopped: {stopped}" if stopped else ""),
        )
    if outage:
        # After the ledger row and the artifact are written: the counts stay visible.
        raise DeliveryOutage(outage)
    return summary
