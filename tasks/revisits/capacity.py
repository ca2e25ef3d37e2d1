"""IO for the revisits flow, step 2: plan the day of each new visit and call within its account
manager's daily capacity (``tasks.revisits.rules.capacity``), one batch of assignees at a time.

Per batch: the visits and calls without a planned day (``planned_for`` NULL, due from the run's
date on - what planning created), with when each customer fell due by cadence (the last
completed contact, or the first card, plus the class cadence: the backlog's order); the
assignees' days already booked, from the run's date on, in one ``GROUP BY``; the pure rule;
then one ``UPDATE`` per planned day. The batch reads and writes in one write transaction (the
write lock on SQLite, the pending rows locked on PostgreSQL), so a concurrent run of the same
day sees the plan and books on top of it; ``planned_for IS NULL`` in the update keeps a plan
once written. Batches hold disjoint assignees, so they plan side by side.

Revisits written before capacity planning, or created elsewhere (a customer's "please call me"
follow-up, planned on its day), keep ``planned_for`` NULL and count as planned on ``due_on``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Date, Engine, bindparam, text

from crm_db.bulk import id_list
from crm_db.enums import AbcClass, ContactChannel
from crm_db.types import raw_date, raw_utc_datetime
from tasks.common.directory import StaffRecord
from tasks.common.run_context import RunCounts
from tasks.common.write_lock import write_transaction
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.capacity import (
    CAPACITY_CHANNELS,
    Capacity,
    Pending,
    PlannedDay,
    plan_days,
)
from tasks.revisits.rules.planning import natural_due

Slot = tuple[int, ContactChannel, date]  # (assignee, channel, day)
_CHANNELS = ", ".join(f"'{c.value}'" for c in CAPACITY_CHANNELS)

# The correlated MAX runs per pending revisit only, on ix_contact_history_customer_outcome_at.
_PENDING = f"""
    SELECT v.id, v.assignee_id, v.channel, v.abc_class, v.due_on, c.first_card_on,
           (SELECT MAX(h.occurred_at) FROM contact_history h
            WHERE h.customer_id = v.customer_id AND h.outcome IN ('completed', 'issue_raised'))
             AS last_completed,
           COALESCE(r.code, '-') AS region_code
    FROM revisits v
    JOIN customers c ON c.id = v.customer_id
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE v.status = 'open' AND v.planned_for IS NULL AND v.due_on >= :as_of
      AND v.channel IN ({_CHANNELS}) AND v.assignee_id IN :assignees
    ORDER BY v.id
"""
_PENDING_SQLITE = text(_PENDING).bindparams(id_list("assignees"), bindparam("as_of", type_=Date()))
_PENDING_PG = text(_PENDING.replace("ORDER BY v.id", "ORDER BY v.id FOR UPDATE OF v")).bindparams(
    id_list("assignees"), bindparam("as_of", type_=Date())
)

# What the assignees have booked from the run's date on (any status: a revisit done ahead of
# its day keeps its slot), on ix_revisits_assignee_planned.
_BOOKED = text(
    f"""
    SELECT assignee_id, channel, planned_for, COUNT(*) AS n FROM revisits
    WHERE assignee_id IN :assignees AND planned_for >= :as_of AND channel IN ({_CHANNELS})
    GROUP BY assignee_id, channel, planned_for
    """
).bindparams(id_list("assignees"), bindparam("as_of", type_=Date()))

_SET_DAY = text(
    "UPDATE revisits SET planned_for = :day WHERE id IN :ids AND planned_for IS NULL"
).bindparams(id_list("ids"), bindparam("day", type_=Date()))


@dataclass(frozen=True, slots=True)
class ManagerPlan:
    """One account manager's plan after a run (the artifact's capacity table)."""

    assignee_id: int
    visits_today: int
    calls_today: int
    later: int  # visits and calls planned for later working days
    last_day: date | None  # the last day anything is planned for
    deferred_now: int  # of this run's new revisits, how many wait for a later day
    over_capacity: int  # this run's revisits planned over capacity (the window was full)


@dataclass
class CapacityResult:
    """What a batch of the planning step returns: per-region counts and per-manager plans."""

    counts: RunCounts = field(default_factory=RunCounts)
    managers: list[ManagerPlan] = field(default_factory=list)

    def merge(self, other: CapacityResult) -> None:
        self.counts.merge(other.counts)
        self.managers.extend(other.managers)


def plan_batch_days(
    engine: Engine,
    ctx: PlanningContext,
    assignees: Sequence[int],
    *,
    dry_run: bool,
) -> CapacityResult:
    """Plan the new visits and calls of ``assignees`` within capacity; in a dry run only
    compute the plan. Returns the counts (``deferred``, ``over_capacity`` by region: the
    revisits this run planned so) and each assignee's plan."""
    result = CapacityResult()
    if not assignees:
        return result
    params = {"assignees": list(assignees), "as_of": ctx.as_of}
    with write_transaction(engine) as conn:
        statement = _PENDING_PG if conn.dialect.name == "postgresql" else _PENDING_SQLITE
        rows = conn.execute(statement, params).all()
        booked = _booked(conn, params)
        pending, regions = _pending(rows, ctx)
        decisions = plan_days(
            pending, as_of=ctx.as_of, calendar=ctx.calendar, capacity=ctx.capacity, booked=booked
        )
        if not dry_run:
            by_day: dict[date, list[int]] = defaultdict(list)
            for decision in decisions:
                by_day[decision.day].append(decision.revisit_id)
            for day, ids in sorted(by_day.items()):
                conn.execute(_SET_DAY, {"day": day, "ids": ids})
    for decision in decisions:
        region = regions[decision.revisit_id]
        if decision.day > ctx.as_of:
            result.counts.add(region, "deferred")
        if decision.over_capacity:
            result.counts.add(region, "over_capacity")
    result.managers.extend(_manager_plans(assignees, booked, decisions, ctx.as_of))
    return result


def _booked(conn: Connection, params: dict[str, Any]) -> dict[Slot, int]:
    return {
        (assignee, ContactChannel(channel), raw_date(day)): n
        for assignee, channel, day, n in conn.execute(_BOOKED, params).tuples()
    }


def _pending(rows: Sequence[Any], ctx: PlanningContext) -> tuple[list[Pending], dict[int, str]]:
    pending: list[Pending] = []
    regions: dict[int, str] = {}
    for row in rows:
        abc = AbcClass(row.abc_class)
        last = raw_utc_datetime(row.last_completed)
        pending.append(
            Pending(
                revisit_id=row.id,
                assignee_id=row.assignee_id,
                channel=ContactChannel(row.channel),
                abc_class=abc,
                overdue_since=natural_due(
                    last_completed=ctx.local_date(last) if last else None,
                    customer_since=raw_date(row.first_card_on),
                    cadence_days=ctx.cadences[abc].cadence_days,
                ),
                not_before=raw_date(row.due_on),
            )
        )
        regions[row.id] = row.region_code
    return pending, regions


def _manager_plans(
    assignees: Iterable[int],
    booked: dict[Slot, int],
    decisions: Sequence[PlannedDay],
    as_of: date,
) -> list[ManagerPlan]:
    load: dict[int, dict[tuple[ContactChannel, date], int]] = defaultdict(lambda: defaultdict(int))
    for (assignee, channel, day), n in booked.items():
        load[assignee][channel, day] += n
    deferred_now: dict[int, int] = defaultdict(int)
    over: dict[int, int] = defaultdict(int)
    for d in decisions:
        load[d.assignee_id][d.channel, d.day] += 1
        deferred_now[d.assignee_id] += d.day > as_of
        over[d.assignee_id] += d.over_capacity
    plans = []
    for assignee in assignees:
        days = load.get(assignee, {})
        plans.append(
            ManagerPlan(
                assignee_id=assignee,
                visits_today=days.get((ContactChannel.VISIT, as_of), 0),
                calls_today=days.get((ContactChannel.PHONE, as_of), 0),
                later=sum(n for (_, day), n in days.items() if day > as_of),
                last_day=max((day for (_, day), n in days.items() if n), default=None),
                deferred_now=deferred_now[assignee],
                over_capacity=over[assignee],
            )
        )
    return plans


def capacity_rows(
    managers: Iterable[ManagerPlan],
    capacity: Capacity,
    staff: Mapping[int, StaffRecord],
    limit: int = 200,
) -> list[dict[str, str | int]]:
    """The artifact's capacity table: one row per account manager with anything planned, most
    deferred first (at most ``limit`` rows, then one row saying how many more)."""
    active = [m for m in managers if m.visits_today or m.calls_today or m.later]
    active.sort(key=lambda m: (-m.over_capacity, -m.later, m.assignee_id))
    rows: list[dict[str, str | int]] = [
        {
            "account manager": f"{_name(staff, m.assignee_id)} ({m.assignee_id})",
            "visits today": m.visits_today,
            "visit capacity": capacity.visits_per_day,
            "calls today": m.calls_today,
            "call capacity": capacity.calls_per_day,
            "deferred (this run)": m.deferred_now,
            "planned later": m.later,
            "planned until": m.last_day.isoformat() if m.last_day else "-",
            "over capacity": m.over_capacity,
        }
        for m in active[:limit]
    ]
    if len(active) > limit:
        more = f"{len(active) - limit} more"
        tail: dict[str, str | int] = {key: "" for key in rows[0]}
        rows.append(tail | {"account manager": more})
    return rows


def _name(staff: Mapping[int, StaffRecord], staff_id: int) -> str:
    member = staff.get(staff_id)
    return member.name if member else "-"


__all__ = ["CapacityResult", "ManagerPlan", "capacity_rows", "plan_batch_days"]
