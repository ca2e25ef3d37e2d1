"""``surveys`` (daily): invite the customers whose periodic NPS wave day has come (A quarterly,
B half-yearly, C yearly, each wave spread over its period's working days) and those whose
complaint was resolved N working days ago (CSAT), through the shared contact policy (consent,
addresses, contact cap, 90-day fatigue, post-complaint first); remind non-responders once and
close expired invitations; turn the answers recorded since the last run into care alerts
(detractors, low CSAT, low ratings: ``tasks/surveys/loop.py``); store the quarter's scores and
the loop's figures (``survey_scores``, ``survey_loop_scores``). Invitations and their emails
commit together (outbox); the ``deliver_outbox`` flow sends them. Re-running for the same date
creates nothing twice.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, cast

from prefect import flow
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import Field

from crm_db.types import utcnow
from flows.run_contract import FlowSummary, resolve_as_of
from tasks.common.flow_run import flow_run
from tasks.common.run_context import RunCounts
from tasks.surveys.invitations import SurveyContext
from tasks.surveys.loop_scores import loop_markdown
from tasks.surveys.prefect_tasks import (
    invite_survey_range,
    load_inputs,
    survey_alerts,
    survey_follow_ups,
    survey_loop_scores,
    survey_scores,
)
from tasks.surveys.scores import scores_markdown
from tasks.surveys.summary import artifact_rows, ledger_counts

FLOW_NAME = "surveys"
# Ranges in flight at once, each in a thread on its own pooled connection (below the pool size,
# as in the revisits flow).
CONCURRENCY = 4
_TASK_RUNNER: Any = ThreadPoolTaskRunner(max_workers=CONCURRENCY)


@flow(
    name=FLOW_NAME,
    description="Invite customers to satisfaction surveys (periodic NPS by class, CSAT after "
    "a resolved complaint), remind non-responders once, close expired invitations, alert on "
    "detractors and low scores.",
    timeout_seconds=3600,
    task_runner=_TASK_RUNNER,
)
def surveys(
    as_of: date | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    range_size: Annotated[
        int, Field(ge=1_000, le=1_000_000, description="customer ids per invitation task")
    ] = 250_000,
) -> FlowSummary:
    """Daily survey invitations.

    Args:
        as_of: business date to invite for (default: today in the CRM time zone).
        dry_run: compute and report what would happen; write and queue nothing.
        now: the run's instant (default: now): what the contact cap, fatigue, reminders and
            expiry count from; for re-running a missed day.
        range_size: customers per invitation task.
    """
    instant = (now or utcnow()).astimezone(UTC)
    run_date = resolve_as_of(as_of, instant)
    parameters = {"as_of": run_date, "now": instant.isoformat(), "range_size": range_size}
    with flow_run(FLOW_NAME, run_date, parameters, dry_run=dry_run) as run:
        inputs = load_inputs(run_date, instant, range_size, dry_run=dry_run, lanes=CONCURRENCY)
        ctx = cast(SurveyContext, quote(inputs.context))
        steps = [survey_follow_ups.submit(ctx, run.run_id, dry_run)] + [
            invite_survey_range.submit(ctx, lo, hi, run.run_id, dry_run) for lo, hi in inputs.ranges
        ]
        wait(steps)
        counts = RunCounts()
        for future in steps:
            counts.merge(future.result())
        # The detractor loop, same run: answers since the last run -> care alerts.
        loop = survey_alerts(run_date, instant, run.run_id, dry_run)
        # Then the scores, the loop's answers included.
        score_lines = survey_scores(run_date, instant, run.run_id, dry_run)
        # And the loop measured: followed up in time, told the result, the next score.
        loop_lines = survey_loop_scores(run_date, instant, run.run_id, dry_run)
        if not inputs.context.waves:
            run.warn("every class's periodic survey is switched off (survey_policies.enabled)")
        return run.finish(
            {**ledger_counts(counts), **loop.totals()},
            artifact_rows(counts),
            description=f"Surveys for {run_date.isoformat()}\n\n{loop.description()}\n\n"
            f"{scores_markdown(score_lines)}\n\n{loop_markdown(loop_lines)}",
        )
