"""``weekly_form_rollup`` (Monday mornings): the roll-up of every region's weekly progress form
(周反馈表) to the marketing admin, naming the regions whose form was not submitted.

Its own small flow rather than a third ``kind`` of ``target_reconciliation``: it reconciles
nothing and writes no snapshot (it reads the week's snapshot and forms), takes neither
``resend`` nor ``month``, and has its own schedule, ledger rows and artifact. Each run reports
the last week whose Sunday is before ``as_of`` once that week has closed (midnight after its
Sunday); the outbox keys ``weekly_rollup:<week>:staff:<id>`` queue it once, so a re-run or a
retry sends nothing twice. ``deliver_outbox`` sends it.
"""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.targets.prefect_tasks import queue_weekly_rollup_task

FLOW_NAME = "weekly_form_rollup"


@flow(
    name=FLOW_NAME,
    description="Monday roll-up of the regions' weekly progress forms (周反馈表) to the "
    "marketing admin, naming the forms not submitted; once per week.",
    timeout_seconds=1800,
)
def weekly_form_rollup(as_of: date | None = None, dry_run: bool = False) -> FlowSummary:
    """Queue the roll-up of last week's forms unless it is queued already.

    Args:
        as_of: the run's date (default: today in the CRM time zone); the week whose Sunday
            last came before it is reported.
        dry_run: compute and report what would be queued; queue nothing.
    """
    run_date = resolve_as_of(as_of)
    with flow_run(FLOW_NAME, run_date, {"as_of": run_date}, dry_run=dry_run) as run:
        result = queue_weekly_rollup_task(run_date, run.run_id, dry_run)
        if not result.closed:
            run.warn(f"week {result.week} has not closed yet (it closes at the end of Sunday)")
        elif result.recipients == 0:
            run.warn("no reachable marketing admin: the roll-up went to nobody")
        if result.closed and result.snapshot_id is None:
            run.warn(f"no weekly snapshot for {result.week}: the roll-up shows no figures")
        counts: dict[str, int] = {
            "regions": result.regions,
            "forms_submitted": result.submitted,
            "forms_missing": result.missing,
            "recipients": result.recipients,
            "rollups_queued": result.queued,
            "rollups_already_queued": result.already_queued,
        }
        if dry_run:
            counts["rollups_would_queue"] = counts.pop("rollups_queued")
        rows: list[dict[str, str | int]] = [
            {"week": result.week, "item": k, "count": v} for k, v in counts.items()
        ]
        return run.finish(counts, rows, description=f"Weekly forms roll-up {result.week}")
