"""``complaint_feedback_report`` (daily; reports once a month): the monthly complaint feedback
report (四个不漏: every result fed back) to the product and operations departments by
``complaint_feedback_routes`` and to each region manager for their region.

Each run reports the last complete month before its business date; the first run after a month
starts queues it, later runs find its outbox keys (``complaint_feedback_report:<month>:staff:<id>``)
and compute nothing. Running daily rather than on the 1st alone means a missed run is caught up
the next day. ``month`` re-queues a given month (still once per recipient: the keys).
``deliver_outbox`` sends the emails.
"""

from __future__ import annotations

from datetime import UTC, date

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crm_core.settings import get_settings
from crm_db.session import session_factory, shared_engine
from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.complaints.feedback_report import ReportRun, queue_due_feedback_report
from tasks.complaints.rules.feedback_report import month_to_report

FLOW_NAME = "complaint_feedback_report"


@task(name="queue-feedback-reports", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def queue_reports(as_of: date, month: str | None, dry_run: bool) -> ReportRun | None:
    session = session_factory(shared_engine())()
    try:
        with session.begin():
            return queue_due_feedback_report(
                session, as_of, zone=get_settings().tz, now=utcnow(), month=month, dry_run=dry_run
            )
    finally:
        session.close()


@flow(
    name=FLOW_NAME,
    description="Monthly complaint feedback report to the product and operations departments "
    "and the region managers; queued by the first run after a month starts.",
    timeout_seconds=1800,
)
def complaint_feedback_report(
    as_of: date | None = None,
    dry_run: bool = False,
    month: str | None = None,
) -> FlowSummary:
    """Queue last month's feedback report unless it is queued already.

    Args:
        as_of: business date of the run (default: today in the CRM time zone); the month
            before it is reported.
        dry_run: compute and report what would be queued; queue nothing.
        month: a month to report instead (YYYY-MM); each recipient still gets it once.
    """
    run_date = resolve_as_of(as_of, utcnow().astimezone(UTC))
    label = month or month_to_report(run_date)
    parameters = {"as_of": run_date, "month": label}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        result = queue_reports(run_date, month, dry_run)
        counts: dict[str, int]
        rows: list[dict[str, str | int]]
        if result is None:
            counts = {"queued": 0, "already_reported": 1}
            rows = [{"month": label, "item": "already queued", "count": 0}]
        else:
            counts = {
                "queued": result.queued,
                "already_queued": result.already_queued,
                "departments": result.departments,
                "region_managers": result.regions,
                "already_reported": 0,
            }
            rows = [{"month": label, "item": k, "count": v} for k, v in counts.items()]
        return run.finish(counts, rows, description=f"Complaint feedback report {label}")
