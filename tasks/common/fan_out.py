"""Fan-out of a flow's id span to child flow runs of a deployment, on Prefect's own machinery.

A large run splits its customer id span into ``parts`` contiguous spans (``split_span``, pure),
starts one child flow run per span with ``run_deployment(..., timeout=0)`` (``launch``: the
runs are queued on the deployment's work pool, and whichever worker polls first runs each), and
waits for them (``wait_for``: polls their states through the client until each is final). The
children's return values come back through Prefect's result storage (``child_results``): the
child flow persists its result, so every machine running the parent must be able to read the
storage the children write to (a shared ``PREFECT_LOCAL_STORAGE_PATH`` or a result storage
block; see README "Production shape").

No scheduler of our own: placing the runs on machines is the work pool's and the workers' job;
this module only names the runs it started and reads their states back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Cancelling

# Between two polls of the children's states: one small API request each time; the children
# take seconds to minutes, so a few seconds of lag at the end costs little.
DEFAULT_POLL_S = 2.0


def split_span(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """``lo..hi`` (inclusive) in at most ``parts`` contiguous spans of near-equal length (the
    first ones one id longer when it does not divide), in order, covering every id once. Fewer
    spans than ``parts`` when the span has fewer ids than that."""
    if parts < 1:
        raise ValueError(f"parts must be positive, got {parts}")
    if hi < lo:
        return []
    total = hi - lo + 1
    parts = min(parts, total)
    size, extra = divmod(total, parts)
    spans: list[tuple[int, int]] = []
    start = lo
    for k in range(parts):
        length = size + (1 if k < extra else 0)
        spans.append((start, start + length - 1))
        start += length
    return spans


class FanOutError(RuntimeError):
    """A child run failed, crashed, was cancelled, or did not finish in time: the message names
    each such child run and its state (names and states only, no parameters)."""


@dataclass(frozen=True)
class Child:
    """One child flow run to start: its name (shown in the UI, no personal data) and its
    parameters (merged with the deployment's defaults)."""

    name: str
    parameters: Mapping[str, Any]


def launch(deployment: str, children: Sequence[Child]) -> list[FlowRun]:
    """Start one flow run of ``deployment`` (``"flow-name/deployment-name"``) per child and
    return at once (``timeout=0``). Called in a flow, each run is linked to it as a subflow in
    the UI."""
    # Called from sync code, run_deployment returns the FlowRun (its async twin a coroutine).
    return [
        cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters=dict(child.parameters),
                flow_run_name=child.name,
                timeout=0,
            ),
        )
        for child in children
    ]


def wait_for(
    run_ids: Sequence[UUID],
    timeout_s: float,
    poll_s: float = DEFAULT_POLL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[FlowRun]:
    """Poll the runs' states until every one is final; return them in the order given when all
    completed. Raises ``FanOutError`` naming the runs that did not complete - after every run
    ended, so the error tells the whole story - or, past ``timeout_s``, naming those still
    unfinished, whose cancellation it then asks for (what they committed stays: each range
    commits in one transaction, and a re-run creates nothing twice)."""
    wanted = list(run_ids)
    deadline = clock() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=wanted)),
                limit=len(wanted),
            )
            by_id = {run.id: run for run in runs}
            missing = [run_id for run_id in wanted if run_id not in by_id]
            if missing:
                raise FanOutError(f"child flow runs not found: {', '.join(map(str, missing))}")
            ordered = [by_id[run_id] for run_id in wanted]
            pending = [run for run in ordered if run.state is None or not run.state.is_final()]
            if not pending:
                break
            if clock() >= deadline:
                for run in pending:
                    client.set_flow_run_state(run.id, Cancelling())
                raise FanOutError(
                    f"child flow runs not finished after {timeout_s:g} s (cancelling them): "
                    + _describe(pending)
                )
            sleep(poll_s)
    failed = [run for run in ordered if run.state is None or not run.state.is_completed()]
    if failed:
        raise FanOutError(f"child flow runs did not complete: {_describe(failed)}")
    return ordered


def child_results(runs: Sequence[FlowRun]) -> list[Any]:
    """The return values of completed child runs, read from the result storage they persisted
    them to."""
    results = []
    for run in runs:
        if run.state is None:
            raise FanOutError(f"child flow run {run.name!r} has no state")
        results.append(run.state.result())
    return results


def _describe(runs: Sequence[FlowRun]) -> str:
    return ", ".join(
        f"{run.name} ({run.state.name if run.state is not None else 'no state'})" for run in runs
    )
