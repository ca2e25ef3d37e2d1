"""``revisits-range``: the child flow of a fanned-out ``revisits`` run. It plans the revisits of
the customer ids ``lo..hi`` with the in-process run's own code (the same id ranges, each a
task run committing in one transaction, side by side in threads), tagged with the parent's
ledger row, and returns its per-region counts for the parent to sum.

Started by the parent through the ``revisits-range`` deployment (``tasks/revisits/fan_out.py``),
never on a schedule. Its result is persisted (JSON) so the parent, possibly on another machine,
reads it back from the result storage. Running a span twice, or two parents at once, creates
nothing twice: every insert goes through the revisits' and outbox's unique keys.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, cast

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from flows.revisits import PLANNING_CONCURRENCY
from tasks.common.run_context import RunCounts
from tasks.revisits.planning import PlanningContext
from tasks.revisits.prefect_tasks import load_context
from tasks.revisits.prefect_tasks import plan_revisits_range as plan_range_task

FLOW_NAME = "revisits-range"
# As in the parent's own process: threads, one pooled connection each.
_TASK_RUNNER: Any = ThreadPoolTaskRunner(max_workers=PLANNING_CONCURRENCY)


@flow(
    name=FLOW_NAME,
    description="Plan the revisits of one customer id span for a fanned-out revisits run.",
    timeout_seconds=3600,
    task_runner=_TASK_RUNNER,
    persist_result=True,
    result_serializer="json",
)
def revisits_range(
    as_of: date,
    now: datetime,
    lo: int,
    hi: int,
    run_id: int | None = None,
    dry_run: bool = False,
    range_size: Annotated[
        int, Field(ge=1_000, le=1_000_000, description="customer ids per planning task")
    ] = 250_000,
    region_codes: list[str] | None = None,
) -> dict[str, dict[str, int]]:
    """Plan customers ``lo..hi`` (inclusive) for ``as_of`` at the parent's instant ``now``.

    Args:
        as_of: the parent run's business date.
        now: the parent run's instant (UTC), which stamps the writes.
        lo: first customer id of the span.
        hi: last customer id of the span.
        run_id: the parent's ledger row (None in a dry run).
        dry_run: compute and count; write and queue nothing.
        range_size: customers per planning task.
        region_codes: the parent's region filter (None: every region).
    """
    if hi < lo:
        raise ValueError(f"empty span: lo={lo} > hi={hi}")
    inputs = load_context(
        as_of, now, range_size, lanes=PLANNING_CONCURRENCY, span=(lo, hi), region_codes=region_codes
    )
    # quote(): see flows/revisits.py (the context is passed as is, not walked for futures).
    shared = cast(PlanningContext, quote(inputs.context))
    steps = [
        plan_range_task.submit(shared, start, end, run_id, dry_run) for start, end in inputs.ranges
    ]
    wait(steps)
    counts = RunCounts()
    for future in steps:
        counts.merge(future.result())
    totals = counts.totals()
    get_run_logger().info(
        "revisits-range %s ids %d..%d in %d ranges: %s",
        as_of.isoformat(),
        lo,
        hi,
        len(inputs.ranges),
        ", ".join(f"{k}={v}" for k, v in totals.items()) or "nothing to do",
    )
    return counts.as_dict()
