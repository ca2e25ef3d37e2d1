"""``classify_customers`` (monthly, and on demand): A/B/C by the Pareto rule and the value matrix,
computed in SQL over trailing-12-month purchases; pinned classes kept; every change audited."""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crm_db.session import shared_engine
from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.classification.classify import ClassificationCounts, classify_all
from tasks.common.flow_run import flow_run

FLOW_NAME = "classify_customers"


@task(name="classify-all-customers", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def classify_task(as_of: date, run_id: int | None, dry_run: bool) -> ClassificationCounts:
    # One task for the whole set: the database streams ranked rows; chunks commit as they go,
    # so a retry simply finishes what is left (unchanged customers are not rewritten).
    return classify_all(shared_engine(), as_of=as_of, now=utcnow(), run_id=run_id, dry_run=dry_run)


@flow(
    name=FLOW_NAME,
    description="Classify customers A/B/C (Pareto on trailing-12-month revenue) and into the "
    "value matrix; pinned classes are kept; every change is recorded with its reason.",
    timeout_seconds=3600,
)
def classify_customers(as_of: date | None = None, dry_run: bool = False) -> FlowSummary:
    """Monthly classification.

    Args:
        as_of: business date; revenue is the 12 months up to it (default: today).
        dry_run: compute and report the classes; change nothing.
    """
    run_date = resolve_as_of(as_of)
    with flow_run(FLOW_NAME, run_date, {"as_of": run_date}, dry_run=dry_run) as run:
        counts = classify_task(run_date, run.run_id, dry_run)
        rows: list[dict[str, str | int]] = [
            {"measure": f"class {k}", "customers": v} for k, v in sorted(counts.by_class.items())
        ]
        rows += [
            {"measure": f"quadrant {k}", "customers": v}
            for k, v in sorted(counts.by_quadrant.items())
        ]
        rows += [
            {"measure": f"change {k}", "customers": v}
            for k, v in sorted(counts.transitions.items())
        ]
        rows.append({"measure": "pinned kept", "customers": counts.pinned_kept})
        totals = {
            "customers": counts.customers,
            "changed": counts.changed,
            "pinned_kept": counts.pinned_kept,
            **{f"class_{k}": v for k, v in counts.by_class.items()},
        }
        return run.finish(totals, rows, description=f"Classification {run_date}")
