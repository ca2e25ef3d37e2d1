"""``revisits`` (daily): follow up the open revisits of earlier days (escalate the overdue ones,
send leftover care emails) while planning the ones falling due (with their care emails), then
plan the day of each new visit and call within its account manager's daily capacity and queue
one digest per account manager. Outcomes and their emails commit together (outbox); the
``deliver_outbox`` flow sends them. Re-running for the same date creates nothing twice.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, cast

from prefect import flow
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.artifacts import artifact_key, publish_summary
from tasks.common.flow_run import flow_run
from tasks.common.run_context import RunCounts
from tasks.revisits.capacity import CapacityResult, capacity_rows
from tasks.revisits.fan_out import launch_spans, span_counts
from tasks.revisits.planning import PlanningContext
from tasks.revisits.prefect_tasks import (
    assignee_batches,
    digest_batch,
    follow_up_open_revisits,
    hand_over_leavers_task,
    load_context,
)
from tasks.revisits.prefect_tasks import plan_revisits_range as plan_range_task
from tasks.revisits.summary import artifact_rows, ledger_counts
from tasks.rules.organisation import staff_in_cycles

FLOW_NAME = "revisits"
# Steps in flight at once (id ranges, the follow-ups, digest batches), each in a thread of
# Prefect's ThreadPoolTaskRunner on its own pooled connection: bounded below the connection pool
# (CRM_DB_POOL_SIZE, default 5, plus as many overflow connections). Threads, not processes: a
# step is a second or two of work, mostly in the database on PostgreSQL, where threads overlap;
# a process per task would cost more to start than a range takes (see DESIGN.md).
PLANNING_CONCURRENCY = 4
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
    fan_out: Annotated[
        int, Field(ge=0, le=64, description="child flow runs planning the id span; 0: in-process")
    ] = 0,
    fan_out_timeout_s: Annotated[
        int, Field(ge=10, le=86_400, description="how long to wait for the child runs")
    ] = 3000,
    region_codes: Annotated[
        list[str] | None, Field(description="片区 codes to plan for; empty: every region")
    ] = None,
) -> FlowSummary:
    """Daily revisit planning.

    Args:
        as_of: business date to plan for (default: today in the CRM time zone).
        dry_run: compute and report what would happen; write and queue nothing.
        range_size: customers per planning task (tasks grow with customers / range_size; the
            first ranges are shorter, staggered so parallel ranges write out of phase).
        fan_out: plan the customer id span in this many child flow runs of the
            ``revisits-range`` deployment, run by the pool's workers (0: in this process).
        fan_out_timeout_s: how long to wait for the child runs before failing the run.
        region_codes: plan the due revisits of these regions' customers only (follow-ups,
            escalations and digests still cover every region); an unknown code fails the run.
    """
    run_date = resolve_as_of(as_of)
    parameters: dict[str, object] = {
        "as_of": run_date,
        "range_size": range_size,
        "fan_out": fan_out,
    }
    if region_codes:
        parameters["region_codes"] = sorted(region_codes)
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        run_id = run.run_id
        # Staggered, so the ranges planned side by side write out of phase (customer_id_ranges).
        inputs = load_context(
            run_date, utcnow(), range_size, lanes=PLANNING_CONCURRENCY, region_codes=region_codes
        )
        ctx = inputs.context
        looped = staff_in_cycles({sid: m.manager_id for sid, m in ctx.staff.items()})
        if looped:
            run.warn(
                f"{len(looped)} staff members are in a cyclic management chain "
                "(escalations stop where the chain loops); fix staff.manager_id"
            )
        # quote(): the context is passed as is. Prefect would otherwise walk it (the whole staff
        # directory) looking for futures, twice per task run - ~25 ms a task at 400 staff.
        # Prefect unwraps it before calling the task, hence the cast.
        shared = cast(PlanningContext, quote(ctx))
        counts = RunCounts()
        # First, a leaver's customers and open revisits go to the branch manager (audited), so
        # nothing below plans, escalates or sends anything to someone who left.
        counts.merge(hand_over_leavers_task(shared, run_id, dry_run))
        # Fanned out, child runs plan the id span (on any worker of the pool); else task runs here.
        children = (
            launch_spans(
                inputs.ranges,
                fan_out,
                as_of=run_date,
                now=ctx.now,
                range_size=range_size,
                run_id=run_id,
                dry_run=dry_run,
                region_codes=sorted(region_codes) if region_codes else None,
            )
            if fan_out
            else []
        )
        local_ranges = [] if fan_out else inputs.ranges
        # The follow-ups touch only revisits of earlier days, planning only customers without an
        # open revisit: independent, so the follow-ups run beside the first ranges.
        steps = [follow_up_open_revisits.submit(shared, run_id, dry_run)] + [
            plan_range_task.submit(shared, lo, hi, run_id, dry_run) for lo, hi in local_ranges
        ]
        # Every step ends (completed or failed) before the first failure is raised.
        wait(steps)
        for future in steps:
            counts.merge(future.result())
        if children:
            # Digests need every span planned: a failed child fails the run, naming it.
            counts.merge(span_counts(children, fan_out_timeout_s))
        # Per batch of assignees: their new visits and calls planned within capacity, then one
        # digest each; batches side by side.
        batches = [
            digest_batch.submit(shared, assignees, run_id, dry_run)
            for assignees in assignee_batches(ctx, PLANNING_CONCURRENCY)
        ]
        wait(batches)
        plans = CapacityResult()
        for batch in batches:
            plans.merge(batch.result())
        counts.merge(plans.counts)
        if over := plans.counts.total("over_capacity"):
            managers = sum(1 for m in plans.managers if m.over_capacity)
            run.warn(
                f"{over} revisits of {managers} account managers planned over capacity (every "
                f"day of the {ctx.capacity.window_working_days}-working-day window was full): "
                "reassign customers or raise revisit.capacity.*"
            )
        publish_summary(
            artifact_key(FLOW_NAME, "capacity"),
            capacity_rows(plans.managers, ctx.capacity, ctx.directory.staff),
            description=f"Revisits planned per account manager for {run_date.isoformat()}"
            f"{' (dry run)' if dry_run else ''}: today, later working days, capacity",
        )
        totals = ledger_counts(counts)
        if looped:
            totals["staff_in_manager_cycle"] = len(looped)
        return run.finish(
            totals,
            artifact_rows(counts, ctx.directory.region_names),
            description=f"Revisits for {run_date.isoformat()}",
        )
