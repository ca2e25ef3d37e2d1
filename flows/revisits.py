"""``revisits`` (daily): follow up the open revisits of earlier days (escalate the overdue ones,
send leftover care emails) while planning the ones falling due (with their care emails), then
queue one digest per account manager. Outcomes and their emails commit together (outbox); the
``deliver_outbox`` flow sends them. Re-running for the same date creates nothing twice.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, cast

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.artifacts import artifact_key, publish_summary
from tasks.revisit_planning import PlanningContext, RangeCounts
from tasks.revisit_summary import artifact_rows, ledger_counts
from tasks.revisit_tasks import digests, follow_up_open_revisits, load_context
from tasks.revisit_tasks import plan_revisits_range as plan_range_task
from tasks.rules.revisits import staff_in_cycles
from tasks.run_ledger import ledger_run
from tasks.worker_processes import MAX_PROCESSES, WorkerPool

FLOW_NAME = "revisits"
# Id ranges (and the escalation step) in flight at once. Each range task hands its range to a worker
# process (``CRM_FLOW_PROCESSES``, see tasks/worker_processes.py) and waits; SQLite readers run
# in parallel under WAL and the short writes queue on the write lock. Without worker processes
# the ranges run in these threads, each on its own connection: bounded below the connection
# pool (CRM_DB_POOL_SIZE, default 5, plus as many overflow connections).
PLANNING_CONCURRENCY = MAX_PROCESSES
_TASK_RUNNER: Any = ThreadPoolTaskRunner(max_workers=PLANNING_CONCURRENCY)


@flow(
    name=FLOW_NAME,
    description="Plan customer revisits by class cadence, escalate overdue ones, queue care "
    "emails and a daily digest per account manager.",
    timeout_seconds=3600,
    task_runner=_TASK_RUNNER,
)
def revisits(
    as_of: date | None = None,
    dry_run: bool = False,
    range_size: Annotated[
        int, Field(ge=1_000, le=1_000_000, description="customer ids per planning task")
    ] = 250_000,
) -> FlowSummary:
    """Daily revisit planning.

    Args:
        as_of: business date to plan for (default: today in the CRM time zone).
        dry_run: compute and report what would happen; write and queue nothing.
        range_size: customers per planning task (tasks grow with customers / range_size; the
            first ranges are shorter, staggered for the worker processes).
    """
    logger = get_run_logger()
    run_date = resolve_as_of(as_of)
    warnings: list[str] = []
    parameters = {"as_of": run_date, "range_size": range_size}
    with ledger_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as ledger:
        run_id = ledger.id
        pool = WorkerPool()
        # Staggered for the worker processes, so they plan out of phase (customer_id_ranges).
        inputs = load_context(run_date, utcnow(), range_size, lanes=max(1, pool.processes))
        ctx = inputs.context
        looped = staff_in_cycles({sid: m.manager_id for sid, m in ctx.staff.items()})
        if looped:
            warnings.append(
                f"{len(looped)} staff members are in a cyclic management chain "
                "(escalations stop where the chain loops); fix staff.manager_id"
            )
        # quote(): the context is passed as is. Prefect would otherwise walk it (the whole staff
        # directory) looking for futures, twice per task run - ~25 ms a task at 400 staff.
        # Prefect unwraps it before calling the task, hence the cast.
        shared = cast(PlanningContext, quote(ctx))
        counts = RangeCounts()
        with pool as workers:
            # The follow-ups touch only revisits of earlier days, planning only customers without
            # an open revisit: independent, so the follow-ups run beside the first ranges.
            steps = [follow_up_open_revisits.submit(shared, run_id, dry_run)] + [
                plan_range_task.submit(shared, lo, hi, run_id, dry_run, workers)
                for lo, hi in inputs.ranges
            ]
            # Every step ends (completed or failed) before a failure leaves the block: closing
            # the pool under running ranges would cancel them mid-call.
            wait(steps)
            for future in steps:
                counts.merge(future.result())
            # One digest per assignee, in batches spread over the worker processes.
            counts.merge(digests(shared, run_id, dry_run, workers))
        key = artifact_key(FLOW_NAME)
        publish_summary(
            key,
            artifact_rows(counts),
            description=f"Revisits for {run_date.isoformat()}{' (dry run)' if dry_run else ''}",
        )
        totals = ledger_counts(counts)
        if looped:
            totals["staff_in_manager_cycle"] = len(looped)
        ledger.complete(totals)
    for warning in warnings:
        logger.warning(warning)
    logger.info(
        "revisits %s%s: %s",
        run_date.isoformat(),
        " (dry run)" if dry_run else "",
        ", ".join(f"{k}={v}" for k, v in totals.items()) or "nothing due",
    )
    return FlowSummary(
        flow=FLOW_NAME,
        as_of=run_date.isoformat(),
        dry_run=dry_run,
        status="warning" if warnings else "ok",
        counts=totals,
        warnings=warnings,
        ledger_run_id=run_id,
        artifact_key=key,
    )
