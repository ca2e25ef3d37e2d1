"""The revisits flow's fan-out: its customer id span planned by child flow runs of the
``revisits-range`` deployment (``flows/revisits_range.py``), which workers on any machine of
the pool pick up, instead of by task runs in the flow's own process.

Each child plans its span with the same code as the in-process run (the same ranges, the same
transactions, tagged with the parent's ledger row), and returns its per-region counts; the
parent sums them into its artifact and ledger row. The parent does the rest itself: leavers
before, follow-ups beside, digests after (see ``flows/revisits.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from prefect.client.schemas.objects import FlowRun

from tasks.common.fan_out import Child, child_results, launch, split_span, wait_for
from tasks.common.run_context import RunCounts

# "<flow name>/<deployment name>" of the child flow (prefect.yaml).
RANGE_DEPLOYMENT = "revisits-range/revisits-range"


def launch_spans(
    ranges: list[tuple[int, int]],
    parts: int,
    *,
    as_of: date,
    now: datetime,
    range_size: int,
    run_id: int | None,
    dry_run: bool,
    region_codes: list[str] | None = None,
) -> list[FlowRun]:
    """One child run per part of the id span the ``ranges`` cover; none when there are no
    customers. ``now`` is the parent's instant, so every child stamps its writes alike."""
    if not ranges:
        return []
    spans = split_span(ranges[0][0], ranges[-1][1], parts)
    run_label = f"run {run_id}" if run_id is not None else "dry run"
    children = [
        Child(
            name=f"revisits-range {as_of.isoformat()} {k}/{len(spans)} ({run_label})",
            parameters={
                "as_of": as_of,
                "now": now,
                "lo": lo,
                "hi": hi,
                "range_size": range_size,
                "run_id": run_id,
                "dry_run": dry_run,
                "region_codes": region_codes,
            },
        )
        for k, (lo, hi) in enumerate(spans, start=1)
    ]
    return launch(RANGE_DEPLOYMENT, children)


def span_counts(runs: list[FlowRun], timeout_s: float) -> RunCounts:
    """Wait for the child runs and sum their counts (``FanOutError`` names any that failed)."""
    done = wait_for([run.id for run in runs], timeout_s)
    counts = RunCounts()
    for result in child_results(done):
        counts.merge(RunCounts.from_dict(_as_mapping(result)))
    return counts


def _as_mapping(result: Any) -> dict[str, dict[str, int]]:
    if not isinstance(result, dict):
        raise TypeError(f"a revisits-range run returned {type(result).__name__}, not counts")
    return result
