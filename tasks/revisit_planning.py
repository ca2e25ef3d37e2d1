"""IO for the revisits flow, step 1: create the revisits that fall due, one id range at a time.

A customer is due when its last completed contact (or, never contacted, the day it became a
customer) plus its class cadence is on or before the planning cut-off. The selection is one SQL
statement per id range; assignment and due dates come from the pure rules; the inserts of a range
commit together. ``ON CONFLICT DO NOTHING`` against the unique keys (one open revisit per customer,
one revisit per customer and due date) makes re-runs and concurrent runs create nothing twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Engine, Table, bindparam, func, select, text

from crm_db.bulk import insert_ignoring_conflicts
from crm_db.enums import AbcClass, ContactChannel
from crm_db.models import Customer, Revisit, Staff
from crm_db.types import UTCDateTime
from tasks.rules.calendar import WorkCalendar
from tasks.rules.revisits import (
    Cadence,
    SkipReason,
    StaffMember,
    assign,
    natural_due,
    planning_cutoff,
    scheduled_due,
)

_REVISITS = cast(Table, Revisit.__table__)


@dataclass(frozen=True)
class PlanningContext:
    """Everything a range needs, loaded once per run (policies, calendar, the staff directory)."""

    as_of: date
    now: datetime
    timezone: ZoneInfo
    calendar: WorkCalendar
    cadences: Mapping[AbcClass, Cadence]
    staff: Mapping[int, StaffMember]
    branch_managers: Mapping[int, int | None]  # branch id -> manager staff id

    @property
    def cutoff(self) -> date:
        return planning_cutoff(self.as_of, self.calendar)

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()

    def threshold_params(self) -> dict[str, Any]:
        """Per class: the latest natural-due base date that is due at the cut-off, as a date (for
        ``first_card_on``) and as the UTC instant ending that local day (for contact times)."""
        params: dict[str, Any] = {}
        for abc in AbcClass:
            base = self.cutoff - timedelta(days=self.cadences[abc].cadence_days)
            end_local = datetime.combine(base + timedelta(days=1), time(0), tzinfo=self.timezone)
            params[f"day_{abc.value}"] = base
            params[f"end_{abc.value}"] = end_local.astimezone(UTC)
        return params


@dataclass
class RangeCounts:
    """Per-region counts for the run artifact (region code -> counter)."""

    by_region: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, region: str, key: str, n: int = 1) -> None:
        self.by_region[region][key] += n

    def merge(self, other: RangeCounts) -> None:
        for region, counter in other.by_region.items():
            self.by_region[region].update(counter)

    def total(self, key: str) -> int:
        return sum(counter[key] for counter in self.by_region.values())


_DUE_CANDIDATES = text(
    """
    SELECT c.id, c.abc_class, c.branch_id, c.account_manager_id, c.first_card_on,
           c.marketing_opt_out, c.unsubscribed_at,
           COALESCE(r.code, '-') AS region_code, lc.last_completed
    FROM customers c
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    LEFT JOIN (
        SELECT customer_id, MAX(occurred_at) AS last_completed
        FROM contact_history
        WHERE outcome IN ('completed', 'issue_raised') AND customer_id BETWEEN :lo AND :hi
        GROUP BY customer_id
    ) lc ON lc.customer_id = c.id
    WHERE c.id BETWEEN :lo AND :hi
      AND c.abc_class IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM revisits o WHERE o.customer_id = c.id AND o.status = 'open')
      AND CASE c.abc_class
            WHEN 'A' THEN (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_A
                                ELSE lc.last_completed < :end_A END)
            WHEN 'B' THEN (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_B
                                ELSE lc.last_completed < :end_B END)
            ELSE (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_C
                       ELSE lc.last_completed < :end_C END)
          END
    ORDER BY c.id
    """
).bindparams(
    *(bindparam(f"end_{abc.value}", type_=UTCDateTime()) for abc in AbcClass),
    *(bindparam(f"day_{abc.value}", type_=Date()) for abc in AbcClass),
)


def _last_completed(value: Any) -> datetime | None:
    """Raw ``MAX(occurred_at)``: a datetime on PostgreSQL, naive-UTC text on SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def customer_id_ranges(engine: Engine, size: int) -> list[tuple[int, int]]:
    """Contiguous id ranges covering every customer, ``size`` ids each (the unit of a task)."""
    with engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    if lo is None:
        return []
    return [(start, min(start + size - 1, hi)) for start in range(lo, hi + 1, size)]


def plan_range(
    engine: Engine,
    ctx: PlanningContext,
    lo: int,
    hi: int,
    *,
    run_id: int | None,
    dry_run: bool,
) -> RangeCounts:
    """Create the due revisits of customers ``lo..hi``; in a dry run only count them.

    The selection reads in its own short transaction and the inserts write in another, so ranges
    can be planned concurrently: SQLite readers never block each other in WAL mode, and a read
    snapshot is never upgraded to a write (which SQLite refuses once another range has committed).
    A revisit another writer created in between is skipped by the unique keys.
    """
    counts = RangeCounts()
    params = {"lo": lo, "hi": hi, **ctx.threshold_params()}
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        candidates = conn.execute(_DUE_CANDIDATES, params).all()
    for row in candidates:
        region = row.region_code
        counts.add(region, "due")
        cadence = ctx.cadences[AbcClass(row.abc_class)]
        if cadence.channel is ContactChannel.EMAIL and (
            row.marketing_opt_out or row.unsubscribed_at is not None
        ):
            # An email-channel revisit is a care email; an opted-out customer gets none.
            counts.add(region, f"skipped:{SkipReason.OPTED_OUT.value}")
            continue
        manager_id = ctx.branch_managers.get(row.branch_id) if row.branch_id else None
        assignment = assign(
            account_manager=ctx.staff.get(row.account_manager_id),
            branch_manager=ctx.staff.get(manager_id) if manager_id else None,
            has_branch=row.branch_id is not None,
        )
        if assignment.skip is not None:
            counts.add(region, f"skipped:{assignment.skip.value}")
            continue
        last = _last_completed(row.last_completed)
        natural = natural_due(
            last_completed=ctx.local_date(last) if last else None,
            customer_since=_as_date(row.first_card_on),
            cadence_days=cadence.cadence_days,
        )
        rows.append(
            {
                "customer_id": row.id,
                "assignee_id": assignment.assignee_id,
                "abc_class": cadence.abc_class,
                "channel": cadence.channel,
                "due_on": scheduled_due(natural=natural, as_of=ctx.as_of, calendar=ctx.calendar),
                "status": "open",
                "needs_reassignment": assignment.needs_reassignment,
                "escalation_level": 0,
                "run_id": run_id,
                "created_at": ctx.now,
                "_region": region,
            }
        )
    if rows and not dry_run:
        regions = [r.pop("_region") for r in rows]
        with engine.begin() as conn:
            created = insert_ignoring_conflicts(conn, _REVISITS, rows, ())
        if created == len(rows):
            for region in regions:
                counts.add(region, "created")
        else:  # a concurrent run got some first: count per region from the database
            counts.add("-", "created", created)
    elif rows:
        for r in rows:
            counts.add(r["_region"], "created")
    return counts


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def load_staff(engine: Engine) -> tuple[dict[int, StaffMember], dict[int, int | None]]:
    """The staff directory and each branch's manager (small tables: loaded once per run)."""
    with engine.connect() as conn:
        staff = {
            row.id: StaffMember(
                row.id,
                active=bool(row.active),
                has_email=bool(row.email) and not row.email_undeliverable,
                manager_id=row.manager_id,
            )
            for row in conn.execute(
                select(
                    Staff.id, Staff.active, Staff.email, Staff.email_undeliverable, Staff.manager_id
                )
            )
        }
        branches = dict(conn.execute(text("SELECT id, manager_id FROM branches")).tuples().all())
    return staff, branches


__all__ = [
    "PlanningContext",
    "RangeCounts",
    "SkipReason",
    "customer_id_ranges",
    "load_staff",
    "plan_range",
]
