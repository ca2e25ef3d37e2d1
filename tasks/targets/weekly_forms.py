"""The weekly progress form (周反馈表), IO: the email with each region manager's link, queued
with Sunday's weekly snapshot; what the form page shows; recording a submission.

The figures come from the week's latest weekly snapshot (``reconciliation_rows``: the database
aggregated them, the reconciliation pro-rated the targets); nothing is recomputed here. The
link's token (``tasks.mail.links.weekly_form_token``) names the region, the manager and the
week; the page trusts it only while that person is still the region's active manager and the
week is open (``rules/weekly_forms.py``), so a link that outlived either reads as invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_db.enums import StaffRole, TargetScope
from crm_db.models import ReconciliationRow, ReconciliationSnapshot, Region, Staff, WeeklyForm
from tasks.common.directory import load_directory
from tasks.common.write_lock import begin_write
from tasks.mail.links import weekly_form_url
from tasks.mail.outbox import NewMessage
from tasks.targets.reconciliation import Reconciliation
from tasks.targets.reports import member_names, recipients
from tasks.targets.rules.plan import RunKind
from tasks.targets.rules.reconcile import ResultRow
from tasks.targets.rules.reports import members
from tasks.targets.rules.weekly_forms import FormEntry, closes_at, form_key, is_open, week_sunday

KIND = "weekly_form"


def compose_form_invitations(
    conn: Connection,
    result: Reconciliation,
    *,
    key: bytes,
    base_url: str,
    zone: ZoneInfo,
    run_id: int | None,
) -> list[NewMessage]:
    """A weekly run's form emails: one per reachable region manager (none for monthly runs)."""
    plan = result.plan
    if plan.kind is not RunKind.WEEKLY:
        return []
    week = plan.label
    expires = closes_at(week, zone)
    sunday = week_sunday(week)
    assert sunday is not None  # the plan's label is an ISO week
    region_names = dict(conn.execute(select(Region.id, Region.name)).tuples().all())
    messages = []
    for manager, region_id in recipients(load_directory(conn)).regions:
        assert manager.email is not None  # reachable
        messages.append(
            NewMessage(
                idempotency_key=form_key(week, region_id, manager.id),
                kind=KIND,
                locale=manager.locale or "zh-CN",
                recipient_email=manager.email,
                recipient_name=manager.name,
                customer_id=None,
                staff_id=manager.id,
                run_id=run_id,
                context={
                    "recipient_name": manager.name,
                    "region_name": region_names.get(region_id, ""),
                    "week": week,
                    "start": plan.current.start.isoformat(),
                    "through": plan.through.isoformat(),
                    "deadline": sunday.isoformat(),
                    "form_url": weekly_form_url(
                        region_id,
                        staff_id=manager.id,
                        week=week,
                        key=key,
                        base_url=base_url,
                        expires_at=expires,
                    ),
                },
            )
        )
    return messages


@dataclass(frozen=True)
class StoredForm:
    prospects_contacted: int
    obstacles: str | None
    next_week_plan: str | None
    submitted_by: str
    submitted_at: datetime
    submissions: int


@dataclass(frozen=True)
class FormView:
    """What the page shows; the manager's and stations' names are for the manager the link
    was sent to and never go to a log."""

    region_id: int
    region_name: str
    week: str
    staff_id: int
    staff_locale: str
    snapshot_id: int
    revision: int
    target_version_id: int | None
    start: date
    through: date
    deadline: date
    members: list[dict[str, Any]]
    form: StoredForm | None


def _result_row(row: ReconciliationRow) -> ResultRow:
    return ResultRow(
        scope=row.scope,
        scope_id=row.scope_id,
        parent_id=row.parent_id,
        metric=row.metric,
        target=row.target,
        expected=row.expected,
        actual=row.actual,
        completion=row.completion,
        pace=row.pace,
        previous_month=row.previous_month or 0,
        previous_year=row.previous_year or 0,
        mom=row.mom,
        yoy=row.yoy,
        rank=row.rank,
        branch_target_sum=row.branch_target_sum,
        flags=tuple(f for f in row.flags.split(",") if f),
    )


@dataclass(frozen=True)
class WeekSnapshot:
    id: int
    revision: int
    target_version_id: int | None
    start: date
    through: date


def week_snapshot(conn: Connection, week: str) -> WeekSnapshot | None:
    """The week's current weekly snapshot: its latest revision (a re-run supersedes)."""
    found = conn.execute(
        select(
            ReconciliationSnapshot.id,
            ReconciliationSnapshot.revision,
            ReconciliationSnapshot.target_version_id,
            ReconciliationSnapshot.period_start,
            ReconciliationSnapshot.period_end,
        )
        .where(ReconciliationSnapshot.kind == RunKind.WEEKLY.value)
        .where(ReconciliationSnapshot.period == week)
        .order_by(ReconciliationSnapshot.id.desc())
        .limit(1)
    ).first()
    return None if found is None else WeekSnapshot(*found)


def _snapshot_rows(
    conn: Connection, snapshot_id: int, *where: ColumnElement[bool]
) -> list[ResultRow]:
    with Session(bind=conn) as session:  # ORM rows on the caller's connection and transaction
        found = session.scalars(
            select(ReconciliationRow).where(ReconciliationRow.snapshot_id == snapshot_id, *where)
        )
        return [_result_row(row) for row in found]


def region_rows(conn: Connection, snapshot_id: int, region_id: int) -> list[ResultRow]:
    """The region's own rows and its stations' rows of a snapshot (nothing of another region)."""
    return _snapshot_rows(
        conn,
        snapshot_id,
        or_(
            (ReconciliationRow.scope == TargetScope.REGION)
            & (ReconciliationRow.scope_id == region_id),
            (ReconciliationRow.scope == TargetScope.BRANCH)
            & (ReconciliationRow.parent_id == region_id),
        ),
    )


def region_scope_rows(conn: Connection, snapshot_id: int) -> list[ResultRow]:
    """Every region's own rows of a snapshot (the roll-up's figures)."""
    return _snapshot_rows(conn, snapshot_id, ReconciliationRow.scope == TargetScope.REGION)


def _manager(conn: Connection, region_id: int, staff_id: int) -> tuple[str, str] | None:
    """(region name, manager's locale) while ``staff_id`` is the region's active manager."""
    found = conn.execute(
        select(Region.name, Staff.locale)
        .join(Staff, Staff.id == Region.manager_id)
        .where(
            Region.id == region_id,
            Staff.id == staff_id,
            Staff.active.is_(True),
            Staff.role == StaffRole.REGION_MANAGER,
        )
    ).first()
    return None if found is None else (found[0], found[1])


def stored_form(conn: Connection, week: str, region_id: int) -> StoredForm | None:
    found = conn.execute(
        select(
            WeeklyForm.prospects_contacted,
            WeeklyForm.obstacles,
            WeeklyForm.next_week_plan,
            Staff.name,
            WeeklyForm.submitted_at,
            WeeklyForm.submissions,
        )
        .join(Staff, Staff.id == WeeklyForm.submitted_by_id)
        .where(WeeklyForm.week == week, WeeklyForm.region_id == region_id)
    ).first()
    return None if found is None else StoredForm(*found)


def _view(
    conn: Connection, region_id: int, staff_id: int, week: str, company_name: str
) -> FormView | None:
    deadline = week_sunday(week)
    manager = _manager(conn, region_id, staff_id)
    snapshot = None if deadline is None or manager is None else week_snapshot(conn, week)
    if snapshot is None or manager is None or deadline is None:
        return None
    rows = region_rows(conn, snapshot.id, region_id)
    return FormView(
        region_id=region_id,
        region_name=manager[0],
        week=week,
        staff_id=staff_id,
        staff_locale=manager[1],
        snapshot_id=snapshot.id,
        revision=snapshot.revision,
        target_version_id=snapshot.target_version_id,
        start=snapshot.start,
        through=snapshot.through,
        deadline=deadline,
        members=members(rows, member_names(conn, company_name)),
        form=stored_form(conn, week, region_id),
    )


def load_form(
    engine: Engine,
    region_id: int,
    staff_id: int,
    week: str,
    *,
    company_name: str,
    zone: ZoneInfo,
    now: datetime,
) -> FormView | None:
    """The form of the link's region and week, or None when the link must read as invalid:
    the week closed, the person is no longer the region's active manager, no weekly snapshot."""
    if not is_open(week, zone, now):
        return None
    with engine.connect() as conn:
        view = _view(conn, region_id, staff_id, week, company_name)
        conn.rollback()
    return view


def record_form(
    engine: Engine,
    region_id: int,
    staff_id: int,
    week: str,
    entry: FormEntry,
    *,
    company_name: str,
    zone: ZoneInfo,
    now: datetime,
) -> FormView | None:
    """Store the region's form for the week - the first post inserts it, a later one updates
    it (who, when, one more submission) - and return the page as it is now; None (nothing
    written) when the link must read as invalid. One transaction; concurrent posts of one
    region end as one row (the upsert on week and region), the last post's content."""
    if not is_open(week, zone, now):
        return None
    with engine.connect() as conn:
        begin_write(conn)
        view = _view(conn, region_id, staff_id, week, company_name)
        if view is None:
            conn.rollback()
            return None
        values = {
            "snapshot_id": view.snapshot_id,
            "prospects_contacted": entry.prospects_contacted,
            "obstacles": entry.obstacles,
            "next_week_plan": entry.next_week_plan,
            "submitted_by_id": staff_id,
            "submitted_at": now,
        }
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(WeeklyForm).values(
            week=week, region_id=region_id, first_submitted_at=now, submissions=1, **values
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["week", "region_id"],
                set_={**values, "submissions": WeeklyForm.submissions + 1},
            )
        )
        form = stored_form(conn, week, region_id)
        conn.commit()
    return replace(view, form=form)
