"""``churn_warning`` (daily): the churn early warning (流失预警). Customers whose purchases over
the trailing 90 days fell below the policy share (default half) of the 90 days before, with no
complaint open, get a care alert: an email to the account manager (A class: the region manager
too) and an urgent revisit due within 2 working days, through the revisit machinery - at most once
per customer per 90 days. Found in SQL per customer id range; each range's alerts, revisits and
emails commit together. Re-running for the same date creates nothing twice.

The surveys flow raises its detractors and low scores through the same ``raise_alerts``
(``tasks/care_alerts``); this check may later become one of its steps.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.run_contract import FlowSummary, resolve_as_of
from tasks.care_alerts.churn import CHUNK_CUSTOMERS
from tasks.care_alerts.prefect_tasks import check_churn_task
from tasks.common.flow_run import flow_run

FLOW_NAME = "churn_warning"


@flow(
    name=FLOW_NAME,
    description="Churn early warning (流失预警): a sharp fall in a customer's purchases raises a "
    "care alert to the account manager and an urgent revisit, at most once per 90 days.",
    timeout_seconds=3600,
)
def churn_warning(
    as_of: date | None = None,
    dry_run: bool = False,
    range_size: Annotated[
        int, Field(ge=1_000, le=1_000_000, description="customer ids per database chunk")
    ] = CHUNK_CUSTOMERS,
) -> FlowSummary:
    """Daily churn check.

    Args:
        as_of: business date; spend is compared over the windows ending on it (default: today).
        dry_run: compute and report the alerts; write and queue nothing.
        range_size: customer ids aggregated per database statement.
    """
    run_date = resolve_as_of(as_of)
    parameters = {"as_of": run_date, "range_size": range_size}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        counts = check_churn_task(run_date, run.run_id, dry_run, range_size)
        if skipped := counts.skipped.get("no_recipient", 0):
            run.warn(
                f"{skipped} churn alerts reached nobody (no reachable account manager or "
                "manager above them): fix the customers' owners"
            )
        return run.finish(
            counts.totals(), counts.rows(), description=f"Churn early warning {run_date}"
        )
