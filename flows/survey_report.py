"""``survey_report`` (daily; reports once a month): the monthly survey report - each region
manager their region's NPS, CSAT, response rate and detractor loop; the marketing admin and the
executives the company view (per region, branch, account manager, class); the product and
operations departments the month's product and service ratings and the customers' suggestions.

Each run reports the last complete month before its business date; the first run after a month
starts queues it, later runs find every recipient's outbox key
(``survey_report:<month>:staff:<id>``) and compute nothing, so a missed day is caught up the
next. The scores are the stored ones (``survey_scores``, ``survey_loop_scores``: the quarter
holding the month against the quarter before), as the surveys flow last computed them.
``month`` re-queues a given month (still once per recipient: the keys). ``deliver_outbox``
sends the emails.
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
from tasks.complaints.rules.feedback_report import month_to_report
from tasks.surveys.report import SurveyReportRun, queue_survey_reports

FLOW_NAME = "survey_report"


@task(name="queue-survey-reports", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def queue_reports(as_of: date, month: str | None, dry_run: bool) -> SurveyReportRun | None:
    session = session_factory(shared_engine())()
    try:
        with session.begin():
            return queue_survey_reports(
                session, as_of, zone=get_settings().tz, now=utcnow(), month=month, dry_run=dry_run
            )
    finally:
        session.close()


@flow(
    name=FLOW_NAME,
    description="Monthly survey report: region managers their region, the marketing admin and "
    "executives the company, the product and operations departments ratings and suggestions; "
    "queued by the first run after a month starts.",
    timeout_seconds=1800,
)
def survey_report(
    as_of: date | None = None,
    dry_run: bool = False,
    month: str | None = None,
) -> FlowSummary:
    """Queue last month's survey report unless every recipient has it already.

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
        if result is None:
            counts = {"queued": 0, "already_reported": 1}
        else:
            counts = {
                "queued": result.queued,
                "already_queued": result.already_queued,
                "region_managers": result.regions,
                "company": result.company,
                "departments": result.departments,
                "already_reported": 0,
            }
            if result.regions + result.company + result.departments == 0:
                run.warn("no reachable region manager, marketing admin, executive or department")
        rows: list[dict[str, str | int]] = [
            {"month": label, "item": k, "count": v} for k, v in counts.items()
        ]
        return run.finish(counts, rows, description=f"Survey report {label}")
