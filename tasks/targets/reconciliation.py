"""One reconciliation: read targets and actuals, run the rules, write the snapshot (IO).

Reading and writing are separate: the aggregation runs on a read connection (on SQLite it must
not hold the database's write lock for its duration); the snapshot and all its rows are then
written in one short write transaction. A re-run for the same (kind, period rule, period)
writes the next revision, superseding the one before; the unique revision makes two concurrent
runs collide (one fails and can be retried) rather than both claiming to be current.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.orm import Session

from crm_db.models import Branch, ReconciliationRow, ReconciliationSnapshot, Region
from crm_db.types import utcnow
from tasks.common.calendars import load_work_calendar
from tasks.common.write_lock import write_transaction
from tasks.mail.outbox import EnqueueResult, NewMessage, prepare
from tasks.targets.actuals import OwnerSpans, Window, load_actuals, load_development
from tasks.targets.policies import TargetPolicies, load_target_policies
from tasks.targets.rules.plan import RunKind, RunPlan, Span, plan_run
from tasks.targets.rules.reconcile import Key, Organisation, ResultRow, reconcile, roll_up
from tasks.targets.store import effective_targets, latest_version_id

ROWS_CHUNK = 2_000


@dataclass(frozen=True)
class Reconciliation:
    plan: RunPlan
    policies: TargetPolicies
    target_version_id: int | None
    organisation: Organisation
    rows: list[ResultRow]
    # A monthly run that closes a quarter: the quarter's new customers and first recharges,
    # rolled up (the award list's figures); None otherwise.
    quarter_totals: dict[Key, int] | None = None

    @property
    def current_totals(self) -> dict[Key, int]:
        """The period's actuals by key, from the rows (the leaderboard's figures)."""
        return {(r.scope, r.scope_id, r.metric): r.actual for r in self.rows}


def load_organisation(conn: Connection) -> Organisation:
    branches = dict(conn.execute(select(Branch.id, Branch.region_id)).tuples().all())
    regions = list(conn.scalars(select(Region.id).order_by(Region.id)))
    return Organisation(branch_region=branches, regions=regions)


def _actuals(
    conn: Connection,
    span: Span,
    plan: RunPlan,
    spans: OwnerSpans,
    policies: TargetPolicies,
    organisation: Organisation,
) -> dict[Key, int]:
    if span.end < span.start:
        return {}
    window = Window(span.start, span.end, span.year_start)
    return roll_up(load_actuals(conn, window, spans, policies.credit), organisation)


def compute(
    engine: Engine,
    kind: RunKind,
    as_of: date,
    zone: ZoneInfo,
    month: str | None = None,
) -> Reconciliation:
    """Everything the snapshot will hold, computed on one read connection."""
    with engine.connect() as conn:
        with Session(bind=conn) as session:
            policies = load_target_policies(session)
            days = load_work_calendar(session)
        plan = plan_run(kind, as_of, policies.periods, days, month)
        version = latest_version_id(conn)
        found = effective_targets(conn, list(plan.month.months), version)
        targets: dict[Key, int] = {}
        for (_, scope, scope_id, metric), value in found.items():
            targets[(scope, scope_id, metric)] = targets.get((scope, scope_id, metric), 0) + value
        organisation = load_organisation(conn)
        with OwnerSpans(conn, zone) as spans:
            current, before, last_year = (
                _actuals(conn, span, plan, spans, policies, organisation)
                for span in (plan.current, plan.previous_month, plan.previous_year)
            )
            quarter_totals = None
            if plan.quarter is not None:
                quarter = plan.quarter
                window = Window(quarter.start, quarter.end, plan.current.year_start)
                quarter_totals = roll_up(
                    load_development(conn, window, spans, policies.credit), organisation
                )
        conn.rollback()  # nothing to keep: the spans table was temporary
    rows = reconcile(
        organisation,
        targets,
        current,
        before,
        last_year,
        plan.elapsed_working_days,
        plan.total_working_days,
        policies.flags,
    )
    return Reconciliation(plan, policies, version, organisation, rows, quarter_totals)


@dataclass(frozen=True)
class WrittenSnapshot:
    id: int
    revision: int
    supersedes_id: int | None
    rows: int
    reports_queued: int = 0
    reports_already_queued: int = 0


# Composes the emails of a snapshot about to be written: (connection, its revision) -> messages.
ComposeReports = Callable[[Connection, int], list[NewMessage]]


def latest_snapshot(conn: Connection, plan: RunPlan, rule: str) -> tuple[int, int] | None:
    """(id, revision) of the current snapshot of the plan's period, if any."""
    found = conn.execute(
        select(ReconciliationSnapshot.id, ReconciliationSnapshot.revision)
        .where(
            ReconciliationSnapshot.kind == plan.kind.value,
            ReconciliationSnapshot.period_rule == rule,
            ReconciliationSnapshot.period == plan.label,
        )
        .order_by(ReconciliationSnapshot.revision.desc())
        .limit(1)
    ).first()
    return None if found is None else (found[0], found[1])


def _row_values(snapshot_id: int, row: ResultRow) -> dict[str, Any]:
    values = asdict(row)
    values["flags"] = ",".join(row.flags)
    values["snapshot_id"] = snapshot_id
    return values


def write_snapshot(
    engine: Engine,
    result: Reconciliation,
    as_of: date,
    run_id: int | None,
    parameters: Mapping[str, Any],
    compose: ComposeReports | None = None,
    now: datetime | None = None,
) -> WrittenSnapshot:
    """The snapshot, every row and the reports ``compose`` gives, in one transaction; the
    next revision of its period.

    The reports are composed (their XLSX built) and validated before the write transaction,
    for the revision read then, so SQLite's write lock is held for the inserts only; a run that
    took that revision meanwhile makes this insert fail on the unique revision, and nothing of
    this run is written."""
    plan = result.plan
    rule = result.policies.periods.rule.value
    with engine.connect() as conn:
        latest = latest_snapshot(conn, plan, rule)
        revision = 1 if latest is None else latest[1] + 1
        messages = [] if compose is None else compose(conn, revision)
        prepared = prepare(messages, now=now or utcnow(), dialect=conn.dialect.name)
        conn.rollback()
    with write_transaction(engine) as conn:
        snapshot_id = conn.execute(
            insert(ReconciliationSnapshot)
            .values(
                kind=plan.kind.value,
                period_rule=rule,
                period=plan.label,
                period_start=plan.current.start,
                period_end=plan.through,
                target_month=plan.month.months[0],
                as_of=as_of,
                revision=revision,
                supersedes_id=None if latest is None else latest[0],
                target_version_id=result.target_version_id,
                parameters=dict(parameters),
                run_id=run_id,
            )
            .returning(ReconciliationSnapshot.id)
        ).scalar_one()
        values = [_row_values(snapshot_id, row) for row in result.rows]
        for first in range(0, len(values), ROWS_CHUNK):
            conn.execute(insert(ReconciliationRow), values[first : first + ROWS_CHUNK])
        written = conn.scalar(
            select(func.count()).where(ReconciliationRow.snapshot_id == snapshot_id)
        )
        queued = prepared.insert(conn) if prepared.rows else EnqueueResult(0, 0)
    return WrittenSnapshot(
        snapshot_id,
        revision,
        None if latest is None else latest[0],
        int(written or 0),
        queued.inserted,
        queued.existing,
    )
