"""Monday's roll-up of the weekly progress forms (周反馈表), IO: one email per reachable
marketing admin with every region - its pace from the week's latest weekly snapshot, and what
its manager filed - naming the regions whose form was not submitted.

It reports a closed week only (``rules/weekly_forms.py``: the last week whose Sunday is before
``as_of``, closed at midnight after it), so the forms cannot change under it and a re-run
composes the same roll-up; its keys (``weekly_rollup:<week>:staff:<id>``) queue it once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import aliased

from crm_db.enums import StaffRole
from crm_db.models import Region, Staff, WeeklyForm
from crm_db.types import utcnow
from tasks.common.directory import load_directory
from tasks.common.write_lock import write_transaction
from tasks.mail.outbox import NewMessage, prepare, queued_keys
from tasks.targets.rules.reconcile import ResultRow
from tasks.targets.rules.reports import members
from tasks.targets.rules.weekly_forms import closes_at, missing_regions, rollup_key, rollup_week
from tasks.targets.weekly_forms import WeekSnapshot, region_scope_rows, week_snapshot

KIND = "weekly_rollup"


@dataclass(frozen=True)
class RollupRun:
    week: str
    closed: bool  # False: the week had not closed yet; nothing composed
    regions: int = 0
    submitted: int = 0
    missing: int = 0
    recipients: int = 0
    queued: int = 0
    already_queued: int = 0
    snapshot_id: int | None = None


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _region_lines(
    conn: Connection, week: str, snapshot: WeekSnapshot | None, zone: ZoneInfo
) -> list[dict[str, Any]]:
    """Every region in code order: its manager, its pace, its form (or that it has none)."""
    manager, filer = aliased(Staff), aliased(Staff)
    regions = conn.execute(
        select(Region.id, Region.name, manager.name)
        .outerjoin(manager, manager.id == Region.manager_id)
        .order_by(Region.code, Region.id)
    ).all()
    filed = {
        row[0]: row
        for row in conn.execute(
            select(
                WeeklyForm.region_id,
                filer.name,
                WeeklyForm.submitted_at,
                WeeklyForm.prospects_contacted,
                WeeklyForm.obstacles,
                WeeklyForm.next_week_plan,
            )
            .join(filer, filer.id == WeeklyForm.submitted_by_id)
            .where(WeeklyForm.week == week)
        )
    }
    rows: defaultdict[int, list[ResultRow]] = defaultdict(list)
    if snapshot is not None:
        for row in region_scope_rows(conn, snapshot.id):
            rows[row.scope_id].append(row)
    lines = []
    for region_id, region_name, manager_name in regions:
        entry = members(rows[region_id], {})  # one entry: the region's; its name is ours
        cells = entry[0]["cells"] if entry else None
        form = filed.get(region_id)
        lines.append(
            {
                "region_id": region_id,
                "region_name": region_name,
                "manager_name": manager_name,
                "submitted": form is not None,
                "submitted_by": None if form is None else form[1],
                "submitted_at": None if form is None else _local(form[2], zone),
                "prospects_contacted": None if form is None else form[3],
                "obstacles": None if form is None else form[4],
                "next_week_plan": None if form is None else form[5],
                "revenue_pace_pct": None if cells is None else cells["revenue"]["pace_pct"],
                "volume_pace_pct": None if cells is None else cells["volume"]["pace_pct"],
                "new_customers": None if cells is None else cells["new_customers"]["actual"],
            }
        )
    return lines


def compose_rollup(
    conn: Connection, week: str, *, zone: ZoneInfo, run_id: int | None
) -> tuple[list[NewMessage], list[dict[str, Any]], WeekSnapshot | None]:
    """The roll-up emails of ``week`` (one per reachable marketing admin), its region lines
    and the snapshot its figures came from."""
    snapshot = week_snapshot(conn, week)
    lines = _region_lines(conn, week, snapshot, zone)
    by_id = {line["region_id"]: line for line in lines}
    missing = [
        {"region_name": by_id[r]["region_name"], "manager_name": by_id[r]["manager_name"]}
        for r in missing_regions(
            [line["region_id"] for line in lines],
            {line["region_id"] for line in lines if line["submitted"]},
        )
    ]
    common: dict[str, Any] = {
        "week": week,
        "start": None if snapshot is None else snapshot.start.isoformat(),
        "through": None if snapshot is None else snapshot.through.isoformat(),
        "region_count": len(lines),
        "submitted_count": len(lines) - len(missing),
        "total_prospects": sum(line["prospects_contacted"] or 0 for line in lines),
        "missing": missing,
        "regions": [{k: v for k, v in line.items() if k != "region_id"} for line in lines],
    }
    admins = sorted(
        (
            s
            for s in load_directory(conn).staff.values()
            if s.role is StaffRole.MARKETING_ADMIN and s.reachable
        ),
        key=lambda s: s.id,
    )
    messages = []
    for admin in admins:
        assert admin.email is not None  # reachable
        messages.append(
            NewMessage(
                idempotency_key=rollup_key(week, admin.id),
                kind=KIND,
                locale=admin.locale or "zh-CN",
                recipient_email=admin.email,
                recipient_name=admin.name,
                customer_id=None,
                staff_id=admin.id,
                run_id=run_id,
                context={**common, "recipient_name": admin.name},
            )
        )
    return messages, lines, snapshot


def queue_weekly_rollup(
    engine: Engine,
    as_of: date,
    *,
    zone: ZoneInfo,
    run_id: int | None,
    dry_run: bool,
    now: datetime | None = None,
) -> RollupRun:
    """Compose the roll-up of the week before ``as_of`` and queue it (one write transaction);
    a dry run counts what it would queue. Nothing while that week is still open."""
    week = rollup_week(as_of)
    moment = now or utcnow()
    if moment < closes_at(week, zone):
        return RollupRun(week, closed=False)
    with engine.connect() as conn:
        messages, lines, snapshot = compose_rollup(conn, week, zone=zone, run_id=run_id)
        known = queued_keys(conn, [m.idempotency_key for m in messages]) if dry_run else set()
        prepared = prepare(messages, now=moment, dialect=conn.dialect.name)
        conn.rollback()
    submitted = sum(1 for line in lines if line["submitted"])
    queued, existing = len(messages) - len(known), len(known)
    if not dry_run and prepared.rows:
        with write_transaction(engine) as conn:
            result = prepared.insert(conn)
        queued, existing = result.inserted, result.existing
    return RollupRun(
        week,
        closed=True,
        regions=len(lines),
        submitted=submitted,
        missing=len(lines) - submitted,
        recipients=len(messages),
        queued=queued,
        already_queued=existing,
        snapshot_id=None if snapshot is None else snapshot.id,
    )
