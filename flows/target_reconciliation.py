"""``target_reconciliation`` (monthly after the cut-off; weekly on Sunday mornings): targets
against actuals per company, region, branch and account manager - completion, pace against the
working-day pro-rated target, MoM, YoY, flags and ranks - stored as an immutable snapshot
(target version, period, parameters, run id). A re-run writes a new revision superseding the
previous one. The report files (every view's XLSX and chart, under ``var/reports/``) are
listed in the ``target-reconciliation-reports`` artifact, beside the company table
(``target-reconciliation-summary``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.artifacts import artifact_key, publish_summary
from tasks.common.flow_run import flow_run
from tasks.common.run_ledger import ledger_parameters
from tasks.targets.prefect_tasks import reconcile_targets
from tasks.targets.rules.plan import RunKind

FLOW_NAME = "target_reconciliation"


@flow(
    name=FLOW_NAME,
    description="Reconcile targets and actuals (company, regions, branches, account managers): "
    "completion, pace, MoM/YoY, flags, ranks; one immutable snapshot per run.",
    timeout_seconds=3600,
)
def target_reconciliation(
    as_of: date | None = None,
    kind: Literal["monthly", "weekly"] = "monthly",
    dry_run: bool = False,
    resend: bool = False,
    month: Annotated[
        str | None,
        Field(
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            description="monthly only: reconcile this month (YYYY-MM) instead of the last one",
        ),
    ] = None,
) -> FlowSummary:
    """Target reconciliation.

    Args:
        as_of: the run's date (default: today in the CRM time zone). Monthly: the last month
            period completed before it; weekly: its month from the start through the day before.
        kind: monthly (the whole month) or weekly (progress so far, pro-rated).
        dry_run: compute and report; write no snapshot.
        resend: a re-run queues the report emails again (once per snapshot revision);
            without it a re-run supersedes the snapshot and sends nothing.
        month: monthly only, the month to reconcile (YYYY-MM).
    """
    run_date = resolve_as_of(as_of)
    run_kind = RunKind(kind)
    if month is not None and run_kind is not RunKind.MONTHLY:
        raise ValueError("month applies to monthly runs only")
    parameters: dict[str, object] = {
        "as_of": run_date,
        "kind": run_kind.value,
        "resend": resend,
        "month": month,
    }
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        outcome = reconcile_targets(
            run_kind, run_date, month, run.run_id, dry_run, resend, ledger_parameters(parameters)
        )
        for text in outcome.warnings:
            run.warn(text)
        if outcome.report_files:
            publish_summary(
                artifact_key(FLOW_NAME, "reports"),
                outcome.report_files,
                description=f"{outcome.description}: report files (XLSX and charts) per view",
            )
        return run.finish(outcome.counts, outcome.rows, description=outcome.description)
