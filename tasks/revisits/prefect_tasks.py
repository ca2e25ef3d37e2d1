"""Prefect tasks of the revisits flow: thin wrappers that open the shared engine and call the IO
functions. One task run per step, per customer id range or per digest batch - never per
customer; the flow's ``ThreadPoolTaskRunner`` runs them side by side, one pooled connection
each. Reading the run's inputs (``load_context``) is a plain call: a few small reads, cheaper
than a task run's own ~40 ms of CPU in the flow and the Prefect API, at the start of the run
where nothing overlaps it.

Sessions are opened inside (never passed in), and ``NO_CACHE`` because every call writes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from crm_core.settings import get_settings
from crm_db.session import session_scope, shared_engine
from tasks.common import policies
from tasks.common.calendars import load_work_calendar
from tasks.common.directory import load_directory
from tasks.common.run_context import RunCounts
from tasks.mail.links import revisit_list_url, revisit_outcome_url
from tasks.revisits import policies as revisit_policies
from tasks.revisits.capacity import CapacityResult, plan_batch_days
from tasks.revisits.care_delivery import settle_care_revisits
from tasks.revisits.emails import digest_batches, queue_care_emails, queue_digest_batch
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.leavers import hand_over_leavers
from tasks.revisits.planning import PlanningContext, customer_id_ranges, id_ranges, plan_range
from tasks.revisits.regions import region_ids


@dataclass(frozen=True)
class RunInputs:
    """What a revisits run starts from: the shared context and the customer id ranges to plan."""

    context: PlanningContext
    ranges: list[tuple[int, int]]


def load_context(
    as_of: date,
    now: datetime,
    range_size: int,
    lanes: int = 1,
    span: tuple[int, int] | None = None,
    region_codes: Collection[str] | None = None,
) -> RunInputs:
    """Policies, calendar, staff directory, and the id ranges (one planning task each), the
    first ones staggered for ``lanes`` ranges planned side by side (``customer_id_ranges``):
    over every customer, or over the ids ``span`` (inclusive) a fan-out child plans.
    ``region_codes`` limits planning to those regions (unknown code: ``UnknownRegionError``)."""
    engine = shared_engine()
    regions = region_ids(engine, region_codes)
    with session_scope(engine) as session:
        calendar = load_work_calendar(session)
        cadences = revisit_policies.cadences(session)
        capacity = revisit_policies.capacity(session)
    context = PlanningContext(
        as_of=as_of,
        now=now,
        timezone=get_settings().tz,
        calendar=calendar,
        cadences=cadences,
        capacity=capacity,
        directory=load_directory(engine),
        region_ids=regions,
    )
    if span is None:
        return RunInputs(context, customer_id_ranges(engine, range_size, lanes))
    return RunInputs(context, id_ranges(span[0], span[1], range_size, lanes))


@task(name="plan-revisits-range", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def plan_revisits_range(
    ctx: PlanningContext,
    lo: int,
    hi: int,
    run_id: int | None,
    dry_run: bool,
) -> RunCounts:
    # Safe to retry: a range commits in one transaction (revisits, care emails, contacts), and
    # inserts ignore rows that a previous attempt already committed.
    engine = shared_engine()
    return plan_range(
        engine, ctx, lo, hi, run_id=run_id, dry_run=dry_run, care_cap_days=_contact_cap_days(engine)
    )


def _contact_cap_days(engine: Engine) -> int:
    with session_scope(engine) as session:
        return policies.contact_cap_days(session)


def _outcome_links(now: datetime) -> Callable[[int, int], str]:
    """Builds the signed "record the outcome" link for a revisit and the staff member it is for."""
    settings = get_settings()
    key, base = settings.signing_key(), settings.public_base_url

    def link(revisit_id: int, staff_id: int) -> str:
        return revisit_outcome_url(revisit_id, staff_id=staff_id, key=key, base_url=base, now=now)

    return link


def _list_links(now: datetime) -> Callable[[int], str]:
    """Builds the signed link to a staff member's full list of open revisits."""
    settings = get_settings()
    key, base = settings.signing_key(), settings.public_base_url

    def link(staff_id: int) -> str:
        return revisit_list_url(staff_id, key=key, base_url=base, now=now)

    return link


@task(name="hand-over-leavers", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def hand_over_leavers_task(ctx: PlanningContext, run_id: int | None, dry_run: bool) -> RunCounts:
    """A leaver's customers and open revisits to the branch manager, audited (one transaction:
    safe to retry, and a re-run finds nothing left to hand over)."""
    return hand_over_leavers(shared_engine(), ctx, run_id=run_id, dry_run=dry_run)


@task(name="follow-up-open-revisits", cache_policy=NO_CACHE)
def follow_up_open_revisits(ctx: PlanningContext, run_id: int | None, dry_run: bool) -> RunCounts:
    """The open revisits of earlier days: finish those whose care email delivery settled (250:
    done; permanent failure: a call), escalate the overdue ones, then send the care emails
    left over (e.g. deferred by the contact cap). Neither touches a customer planning can pick
    (planning takes customers without an open revisit; this only revisits created before the
    run), so the flow runs it beside the planning ranges. Escalation goes first, so a revisit
    completed by its care email today was still escalated if it was overdue.

    No retries: its care-email batches commit one by one, so a retry would send nothing twice
    but would not count what the first attempt sent (the artifact and ledger would under-report
    care emails)."""
    engine = shared_engine()
    counts = settle_care_revisits(engine, now=ctx.now, dry_run=dry_run)
    counts.merge(
        escalate_overdue(
            engine,
            ctx,
            outcome_url=_outcome_links(ctx.now),
            run_id=run_id,
            dry_run=dry_run,
        )
    )
    counts.merge(
        queue_care_emails(
            engine,
            ctx,
            cap_days=_contact_cap_days(engine),
            run_id=run_id,
            dry_run=dry_run,
            created_before=ctx.now,
        )
    )
    return counts


@task(name="queue-revisit-digests", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def digest_batch(
    ctx: PlanningContext, assignees: list[int], run_id: int | None, dry_run: bool
) -> CapacityResult:
    """One batch of assignees (``digest_batches``): plan the day of their new visits and calls
    within capacity, then queue their digests (what is planned for today) in one transaction.
    One task for both: the digest needs the plan, and a task run per step would cost more than
    the planning itself."""
    # Safe to retry: a plan once written is kept (``planned_for IS NULL``), and a digest's
    # idempotency key (kind, date, assignee) makes a second attempt queue nothing twice.
    engine = shared_engine()
    result = plan_batch_days(engine, ctx, assignees, dry_run=dry_run)
    result.counts.merge(
        queue_digest_batch(
            engine,
            ctx,
            assignees,
            outcome_url=_outcome_links(ctx.now),
            run_id=run_id,
            dry_run=dry_run,
            list_url=_list_links(ctx.now),
        )
    )
    return result


def assignee_batches(ctx: PlanningContext, batches: int) -> list[list[int]]:
    """The assignees with due revisits in at most ``batches`` batches of about equal work (a
    plain call: one small read)."""
    return digest_batches(shared_engine(), ctx.as_of, batches=batches)
