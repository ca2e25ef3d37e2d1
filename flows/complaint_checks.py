"""``complaint_checks`` (every 15 minutes): escalate complaints whose SLA tiers fell due (each
tier once per complaint and target, one email per recipient per check), assign unassigned
complaints by branch and remind branch managers of resolved complaints not verified (四个不漏).
Decisions and their emails commit together (outbox); ``deliver_outbox`` sends them. Re-running
a check writes and queues nothing new.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from prefect import flow

from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.complaints.prefect_tasks import check_complaints
from tasks.complaints.summary import artifact_rows

FLOW_NAME = "complaint_checks"


@flow(
    name=FLOW_NAME,
    description="Escalate complaints past their SLA tiers (warning, assignee, branch, region, "
    "senior management), assign unassigned ones by branch, remind unverified ones.",
    timeout_seconds=900,
)
def complaint_checks(
    as_of: date | None = None,
    dry_run: bool = False,
    checked_at: datetime | None = None,
) -> FlowSummary:
    """One complaint check.

    Args:
        as_of: business date the run is filed under (default: today in the CRM time zone).
        dry_run: compute and report what would happen; write and queue nothing.
        checked_at: the check's instant (default: now); for re-running a missed check.
    """
    now = (checked_at or utcnow()).astimezone(UTC)
    run_date = resolve_as_of(as_of, now)
    parameters = {"as_of": run_date, "checked_at": now.isoformat()}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        outcome = check_complaints(now, run.run_id, dry_run)
        for text in outcome.warnings:
            run.warn(text)
        return run.finish(
            outcome.counts(),
            artifact_rows(outcome),
            description=f"Complaint check at {now.strftime('%Y-%m-%d %H:%M')} UTC",
        )
