"""Actuals of a period, aggregated by the database (IO).

Three GROUP BY statements per period, each grouped by (credited branch, credited account
manager), summing exact integers (fen, ml, counts):

- transactions in the period: volume and revenue (purchases), recharge amounts, and the volume
  of customers whose first card was issued this calendar year;
- customers whose first card was issued in the period, per card type;
- the first recharge of each of those cards (earliest day, then lowest id), if made by the
  end of the period.

Crediting: the account manager who owned the customer on the transaction's date (the
assignment history, ``tasks.targets.rules.owners``; the issue date for a new card), and the
customer's home branch - or, under the ``station`` policy, the station where the transaction
happened (new cards stay with the home branch: issuing one is not a transaction). The owner
spans go to a temporary table of the connection. The period's transactions are read once, by
the current account manager; the transactions of the few customers with a recorded change are
then read through their index, joined with the spans, and their figures moved to the owner of
each day. The roll-up to regions and the company is exact integer addition
(``tasks.targets.rules.reconcile.roll_up``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Index,
    Integer,
    MetaData,
    SQLColumnExpression,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from crm_db.enums import CardType, TargetMetric, TransactionKind
from crm_db.models import Customer, CustomerOwnerChange, Transaction
from tasks.targets.rules.owners import OwnerChangeRow, OwnerSpan, owner_spans
from tasks.targets.rules.reconcile import GroupActual

SPANS_CHUNK = 5_000
IDS_CHUNK = 5_000


class CreditPolicy(StrEnum):
    HOME = "home"  # the customer's home branch
    STATION = "station"  # the station where the transaction happened


NEW_CUSTOMER_METRIC = {
    CardType.PERSONAL: TargetMetric.NEW_CUSTOMERS_PERSONAL,
    CardType.COMPANY: TargetMetric.NEW_CUSTOMERS_COMPANY,
    CardType.FLEET: TargetMetric.NEW_CUSTOMERS_FLEET,
}


@dataclass(frozen=True, slots=True)
class Window:
    start: date
    end: date  # inclusive
    year_start: date  # 1 January of the target month's year ("developed this year")


def _spans_table() -> Table:
    return Table(
        "tmp_owner_spans",
        MetaData(),
        Column("customer_id", Integer, nullable=False),
        Column("valid_from", Date, nullable=False),
        Column("valid_to", Date, nullable=False),
        Column("staff_id", Integer),
        Index("ix_tmp_owner_spans_customer", "customer_id", "valid_from"),
        prefixes=["TEMPORARY"],
    )


class OwnerSpans:
    """The owner spans of every customer with a recorded change, in a temporary table of
    ``conn`` for as long as the ``with`` block runs."""

    def __init__(self, conn: Connection, zone: ZoneInfo) -> None:
        self.conn = conn
        self.zone = zone
        self.table = _spans_table()
        self.customer_ids: list[int] = []  # the customers with a recorded change

    def __enter__(self) -> OwnerSpans:
        changes = [
            OwnerChangeRow(*row)
            for row in self.conn.execute(
                select(
                    CustomerOwnerChange.customer_id,
                    CustomerOwnerChange.from_staff_id,
                    CustomerOwnerChange.to_staff_id,
                    CustomerOwnerChange.changed_at,
                ).order_by(CustomerOwnerChange.id)
            )
        ]
        self.table.drop(self.conn, checkfirst=True)
        self.table.create(self.conn)
        spans = owner_spans(changes, self.zone)
        for first in range(0, len(spans), SPANS_CHUNK):
            self.conn.execute(
                self.table.insert(), [_span_row(s) for s in spans[first : first + SPANS_CHUNK]]
            )
        self.customer_ids = sorted({s.customer_id for s in spans})
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            # A failed statement aborts a PostgreSQL transaction: roll back first (the temporary
            # table created in it goes too), so the original error is the one raised.
            self.conn.rollback()
        self.table.drop(self.conn, checkfirst=True)


def _span_row(span: OwnerSpan) -> dict[str, object]:
    return {
        "customer_id": span.customer_id,
        "valid_from": span.valid_from,
        "valid_to": span.valid_to,
        "staff_id": span.staff_id,
    }


def _owner(spans: Table) -> ColumnElement[int]:
    # A customer with recorded changes has spans for every day (a NULL owner is "nobody");
    # one without any has always been owned by the current account manager.
    return case(
        (spans.c.customer_id.is_(None), Customer.account_manager_id),
        else_=spans.c.staff_id,
    )


def _span_join(spans: Table, day: SQLColumnExpression[date]) -> ColumnElement[bool]:
    return and_(
        spans.c.customer_id == Customer.id,
        spans.c.valid_from <= day,
        spans.c.valid_to > day,
    )


def _sum_if(condition: ColumnElement[bool], value: SQLColumnExpression[int]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, value), else_=literal(0))), 0)


def load_actuals(
    conn: Connection, window: Window, owners: OwnerSpans, policy: CreditPolicy
) -> list[GroupActual]:
    """The period's actuals per (credited branch, credited account manager) and metric."""
    spans = owners.table
    groups: list[GroupActual] = []
    credited = (Customer.branch_id if policy is CreditPolicy.HOME else Transaction.branch_id).label(
        "credited"
    )
    purchase = Transaction.kind == TransactionKind.PURCHASE
    recharge = Transaction.kind == TransactionKind.RECHARGE
    sums = (
        _sum_if(purchase, Transaction.volume_ml),
        _sum_if(purchase, Transaction.amount_fen),
        _sum_if(recharge, Transaction.amount_fen),
        _sum_if(and_(purchase, Customer.first_card_on >= window.year_start), Transaction.volume_ml),
    )
    metrics = (
        TargetMetric.VOLUME_ML,
        TargetMetric.REVENUE_FEN,
        TargetMetric.RECHARGE_FEN,
        TargetMetric.NEW_CUSTOMER_VOLUME_ML,
    )
    in_period = (Transaction.occurred_on >= window.start, Transaction.occurred_on <= window.end)
    totals: defaultdict[tuple[int | None, int | None, TargetMetric], int] = defaultdict(int)
    # Every transaction, credited to the customer's current account manager: one pass over the
    # period's transactions without touching the assignment history.
    current = Customer.account_manager_id
    for branch, staff, *values in conn.execute(
        select(credited, current, *sums)
        .select_from(Transaction)
        .join(Customer, Customer.id == Transaction.customer_id)
        .where(*in_period)
        .group_by(credited, current)
    ):
        for metric, value in zip(metrics, values, strict=True):
            totals[(branch, staff, metric)] += int(value)
    # Customers with a recorded change (few, read through their index): move each day's figures
    # from the current account manager to the one who owned the customer that day. Integer
    # arithmetic, so the result is exact.
    # The ids go in as literals, chunk by chunk, so the planner reads their transactions through
    # (customer_id, occurred_on) rather than scanning the period's days.
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True, literal_execute=True)
    moved = (
        select(credited, current, spans.c.staff_id, *sums)
        .select_from(Transaction)
        .join(Customer, Customer.id == Transaction.customer_id)
        .join(spans, _span_join(spans, Transaction.occurred_on))
        .where(Transaction.customer_id.in_(ids), *in_period)
        .group_by(credited, current, spans.c.staff_id)
    )
    for first in range(0, len(owners.customer_ids), IDS_CHUNK):
        chunk = owners.customer_ids[first : first + IDS_CHUNK]
        for branch, now_owner, then_owner, *values in conn.execute(moved, {"ids": chunk}):
            if now_owner != then_owner:
                for metric, value in zip(metrics, values, strict=True):
                    totals[(branch, now_owner, metric)] -= int(value)
                    totals[(branch, then_owner, metric)] += int(value)
    groups += [
        GroupActual(branch, staff, metric, value)
        for (branch, staff, metric), value in totals.items()
        if value
    ]
    return groups + load_development(conn, window, owners, policy)


def load_development(
    conn: Connection, window: Window, owners: OwnerSpans, policy: CreditPolicy
) -> list[GroupActual]:
    """The new cards issued in the window per card type and the first recharge of each (made
    by the window's end), per credited branch and owner: two of ``load_actuals``' statements,
    alone for a quarter's award list."""
    spans = owners.table
    groups: list[GroupActual] = []
    credited = (Customer.branch_id if policy is CreditPolicy.HOME else Transaction.branch_id).label(
        "credited"
    )
    recharge = Transaction.kind == TransactionKind.RECHARGE
    new_owner = _owner(spans).label("owner")
    for branch, staff, card_type, count in conn.execute(
        select(Customer.branch_id, new_owner, Customer.card_type, func.count())
        .select_from(Customer)
        .outerjoin(spans, _span_join(spans, Customer.first_card_on))
        .where(Customer.first_card_on >= window.start, Customer.first_card_on <= window.end)
        .group_by(Customer.branch_id, new_owner, Customer.card_type)
    ):
        groups.append(GroupActual(branch, staff, NEW_CUSTOMER_METRIC[CardType(card_type)], count))

    first_recharge = (
        select(Transaction.id)
        .where(Transaction.customer_id == Customer.id, recharge)
        .order_by(Transaction.occurred_on, Transaction.id)
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )
    first_owner = _owner(spans).label("owner")
    for branch, staff, value in conn.execute(
        select(credited, first_owner, func.sum(Transaction.amount_fen))
        .select_from(Customer)
        .join(Transaction, Transaction.id == first_recharge)
        .outerjoin(spans, _span_join(spans, Transaction.occurred_on))
        .where(
            Customer.first_card_on >= window.start,
            Customer.first_card_on <= window.end,
            Transaction.occurred_on <= window.end,
        )
        .group_by(credited, first_owner)
    ):
        if value:
            groups.append(GroupActual(branch, staff, TargetMetric.FIRST_RECHARGE_FEN, int(value)))
    return groups
