"""Prefect tasks of the surveys flow: thin wrappers that open the shared engine and call the IO
functions - one task run per customer id range and one for the follow-ups (expiry, reminders),
never one per customer. Reading the run's inputs (``load_inputs``) is a plain call.

Sessions are opened inside (never passed in), and ``NO_CACHE`` because every call writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from crm_core.settings import get_settings
from crm_db.session import session_scope, shared_engine
from tasks.common import policies
from tasks.common.calendars import load_work_calendar
from tasks.common.run_context import RunCounts
from tasks.revisits.planning import customer_id_ranges
from tasks.surveys.followups import expire_invitations, send_reminders
from tasks.surveys.invitations import SurveyContext, invite_range, load_context
from tasks.surveys.loop import LoopCounts, raise_survey_alerts
from tasks.surveys.loop_scores import LoopLine, store_loop_scores
from tasks.surveys.policies import survey_rules
from tasks.surveys.scores import ScoreLine, store_scores


@dataclass(frozen=True)
class RunInputs:
    context: SurveyContext
    ranges: list[tuple[int, int]]


def load_inputs(
    as_of: date, now: datetime, range_size: int, *, dry_run: bool, lanes: int = 1
) -> RunInputs:
    """Policies, calendar, the day's waves (their campaigns created and committed here outside
    a dry run), the post-complaint surveys due, and the customer id ranges."""
    engine = shared_engine()
    with session_scope(engine) as session:
        calendar = load_work_calendar(session)
        rules = survey_rules(session)
        cap_days = policies.contact_cap_days(session)
        context = load_context(
            session.connection(),
            as_of=as_of,
            now=now,
            timezone=get_settings().tz,
            calendar=calendar,
            rules=rules,
            cap_days=cap_days,
            dry_run=dry_run,
        )
    return RunInputs(context, customer_id_ranges(engine, range_size, lanes))


@task(name="invite-survey-range", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def invite_survey_range(
    ctx: SurveyContext, lo: int, hi: int, run_id: int | None, dry_run: bool
) -> RunCounts:
    # Safe to retry: a range commits in one transaction, and the unique keys skip rows a
    # previous attempt committed.
    return invite_range(shared_engine(), ctx, lo, hi, run_id=run_id, dry_run=dry_run)


@task(name="survey-follow-ups", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def survey_follow_ups(ctx: SurveyContext, run_id: int | None, dry_run: bool) -> RunCounts:
    """Expire first (an expired invitation gets no reminder), then remind."""
    engine = shared_engine()
    counts = expire_invitations(engine, ctx, dry_run=dry_run)
    counts.merge(send_reminders(engine, ctx, run_id=run_id, dry_run=dry_run))
    return counts


@task(name="survey-alerts", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def survey_alerts(as_of: date, now: datetime, run_id: int | None, dry_run: bool) -> LoopCounts:
    """The detractor loop: the answers recorded since the last run become care alerts, urgent
    revisits and their emails. Safe to retry: chunks commit as they go and the alerts' unique
    keys skip what a previous attempt wrote."""
    return raise_survey_alerts(
        shared_engine(),
        as_of=as_of,
        now=now,
        timezone=get_settings().tz,
        run_id=run_id,
        dry_run=dry_run,
    )


@task(name="survey-scores", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def survey_scores(as_of: date, now: datetime, run_id: int | None, dry_run: bool) -> list[ScoreLine]:
    """This quarter's and the previous quarter's scores, stored (replaced) in one transaction."""
    return store_scores(
        shared_engine(),
        as_of=as_of,
        now=now,
        timezone=get_settings().tz,
        run_id=run_id,
        dry_run=dry_run,
    )


@task(name="survey-loop-scores", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def survey_loop_scores(
    as_of: date, now: datetime, run_id: int | None, dry_run: bool
) -> list[LoopLine]:
    """The detractor loop of this quarter and the previous one, stored (replaced) in one
    transaction."""
    return store_loop_scores(
        shared_engine(),
        as_of=as_of,
        now=now,
        timezone=get_settings().tz,
        run_id=run_id,
        dry_run=dry_run,
    )
