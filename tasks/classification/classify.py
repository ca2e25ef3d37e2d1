"""IO for the classify_customers flow: revenue figures from SQL, rules in Python, changes back.

The database does the heavy part - one pass over the trailing 12 months of transactions grouped
by customer, ranked with window functions - and streams rows ordered by rank. Python applies the
pure rules chunk by chunk and writes only the customers whose class or quadrant changed, with an
audit row each (unique per customer and as-of date, so a re-run adds nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Row, Table, bindparam, text, update

from crm_db.bulk import insert_ignoring_conflicts
from crm_db.enums import AbcClass, CardType, ValueQuadrant
from crm_db.models import Customer, CustomerClassChange
from crm_db.session import session_scope
from tasks.classification.policies import abc_policy, value_policy
from tasks.classification.rules import (
    AbcPolicy,
    ValuePolicy,
    abc_class,
    potential_is_high,
    value_quadrant,
)

# Revenue is fuel sold (purchases); recharges move money onto a card and would count it twice.
_RANKED_REVENUE = text(
    """
    WITH revenue AS (
        SELECT c.id AS customer_id, c.card_type, c.abc_class, c.abc_pinned, c.value_quadrant,
               COALESCE(SUM(t.amount_fen), 0) AS t12,
               COALESCE(SUM(CASE WHEN t.occurred_on > :recent_start THEN t.amount_fen END), 0)
                   AS recent,
               COALESCE(SUM(CASE WHEN t.occurred_on > :previous_start
                                  AND t.occurred_on <= :recent_start THEN t.amount_fen END), 0)
                   AS previous
        FROM customers c
        LEFT JOIN transactions t
               ON t.customer_id = c.id AND t.kind = 'purchase'
              AND t.occurred_on > :year_start AND t.occurred_on <= :as_of
        GROUP BY c.id, c.card_type, c.abc_class, c.abc_pinned, c.value_quadrant
    )
    SELECT customer_id, card_type, abc_class, abc_pinned, value_quadrant, t12, recent, previous,
           ROW_NUMBER() OVER (ORDER BY t12 DESC, customer_id) AS rank,
           SUM(t12) OVER (ORDER BY t12 DESC, customer_id ROWS UNBOUNDED PRECEDING) - t12
               AS revenue_before,
           SUM(t12) OVER () AS total_revenue,
           COUNT(*) OVER () AS n_customers
    FROM revenue
    ORDER BY rank
    """
)

_CUSTOMERS = cast(Table, Customer.__table__)
_CLASS_CHANGES = cast(Table, CustomerClassChange.__table__)
_UPDATE = (
    update(_CUSTOMERS)
    .where(_CUSTOMERS.c.id == bindparam("cid"))
    .values(
        abc_class=bindparam("new_class"),
        value_quadrant=bindparam("new_quadrant"),
        classified_at=bindparam("now"),
    )
)


@dataclass
class ClassificationCounts:
    customers: int = 0
    changed: int = 0
    pinned_kept: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    by_quadrant: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)  # e.g. "B->A"

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "changed": self.changed,
            "pinned_kept": self.pinned_kept,
            "by_class": dict(sorted(self.by_class.items())),
            "by_quadrant": dict(sorted(self.by_quadrant.items())),
            "transitions": dict(sorted(self.transitions.items())),
        }


@dataclass(frozen=True)
class Decision:
    customer_id: int
    old_class: str | None
    new_class: str
    old_quadrant: str | None
    new_quadrant: str
    reason: str


def decide(row: Row[Any], abc: AbcPolicy, value: ValuePolicy) -> Decision:
    """Apply the rules to one ranked revenue row (pure given the row)."""
    if row.abc_pinned and row.abc_class is not None:
        new_class, reason = AbcClass(row.abc_class), "pinned class kept"
    else:
        new_class = abc_class(
            rank=row.rank,
            revenue_before=int(row.revenue_before),
            total_revenue=int(row.total_revenue),
            n_customers=int(row.n_customers),
            policy=abc,
        )
        reason = f"pareto rank {row.rank} of {row.n_customers}"
    quadrant = value_quadrant(
        current_high=int(row.t12) >= value.current_high_revenue_fen,
        potential_high=potential_is_high(
            recent_fen=int(row.recent),
            previous_fen=int(row.previous),
            card_type=CardType(row.card_type),
            policy=value,
        ),
    )
    return Decision(
        customer_id=row.customer_id,
        old_class=row.abc_class,
        new_class=new_class.value,
        old_quadrant=row.value_quadrant,
        new_quadrant=quadrant.value,
        reason=reason,
    )


def _chunks(rows: Iterator[Row[Any]], size: int) -> Iterator[list[Row[Any]]]:
    chunk: list[Row[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_changes(
    engine: Engine, changes: Sequence[Decision], as_of: date, run_id: int | None, now: datetime
) -> None:
    """One short transaction per chunk: the class update and its audit row land together."""
    with engine.begin() as conn:
        conn.execute(
            _UPDATE,
            [
                {
                    "cid": d.customer_id,
                    "new_class": d.new_class,
                    "new_quadrant": d.new_quadrant,
                    "now": now,
                }
                for d in changes
            ],
        )
        insert_ignoring_conflicts(
            conn,
            _CLASS_CHANGES,
            [
                {
                    "customer_id": d.customer_id,
                    "as_of": as_of,
                    "old_class": d.old_class,
                    "new_class": d.new_class,
                    "old_quadrant": d.old_quadrant,
                    "new_quadrant": d.new_quadrant,
                    "reason": d.reason,
                    "run_id": run_id,
                    "created_at": now,
                }
                for d in changes
            ],
            ["customer_id", "as_of"],
        )


def classify_all(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    run_id: int | None,
    dry_run: bool,
    chunk_size: int = 20_000,
) -> ClassificationCounts:
    """Classify every customer as of ``as_of``; writes nothing when ``dry_run``."""
    with session_scope(engine) as session:
        abc, value = abc_policy(session), value_policy(session)
    params = {
        "as_of": as_of,
        "year_start": as_of - timedelta(days=365),
        "recent_start": as_of - timedelta(days=91),
        "previous_start": as_of - timedelta(days=182),
    }
    counts = ClassificationCounts()
    # Reads stream on their own connection; each chunk of changes commits on another, so memory
    # stays bounded at a million customers. A crash part-way leaves each customer consistent and
    # a re-run for the same date completes the rest.
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=chunk_size).execute(
            _RANKED_REVENUE, params
        )
        for chunk in _chunks(iter(result), chunk_size):
            changes = []
            for row in chunk:
                decision = decide(row, abc, value)
                counts.customers += 1
                counts.by_class[decision.new_class] += 1
                counts.by_quadrant[decision.new_quadrant] += 1
                if row.abc_pinned and row.abc_class is not None:
                    counts.pinned_kept += 1
                if (decision.old_class, decision.old_quadrant) != (
                    decision.new_class,
                    decision.new_quadrant,
                ):
                    changes.append(decision)
                    counts.transitions[f"{decision.old_class or '-'}->{decision.new_class}"] += 1
            counts.changed += len(changes)
            if changes and not dry_run:
                _write_changes(engine, changes, as_of, run_id, now)
    return counts


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


__all__ = ["ClassificationCounts", "ValueQuadrant", "classify_all", "decide", "start_of_day"]
