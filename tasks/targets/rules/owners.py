"""Who owned a customer on a given day: spans of the account-manager assignment history.

``customer_owner_changes`` records every change with its instant. A change takes effect on its
local date (in the CRM's time zone): a transaction on the day of a hand-over is credited to the
new owner. Before a customer's first recorded change the owner was that change's ``from``;
after the last, its ``to``. A customer without any recorded change has always been owned by the
current ``customers.account_manager_id`` (the SQL falls back to it). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import groupby
from zoneinfo import ZoneInfo

# Open ends of the spans, as dates every backend stores and compares.
BEGINNING = date(1900, 1, 1)
END = date(9999, 12, 31)


@dataclass(frozen=True, slots=True)
class OwnerChangeRow:
    customer_id: int
    from_staff_id: int | None
    to_staff_id: int | None
    changed_at: datetime  # aware


@dataclass(frozen=True, slots=True)
class OwnerSpan:
    """``staff_id`` owned the customer from ``valid_from`` (included) to ``valid_to``
    (excluded); ``None`` means nobody did."""

    customer_id: int
    valid_from: date
    valid_to: date
    staff_id: int | None


def owner_spans(changes: Iterable[OwnerChangeRow], zone: ZoneInfo) -> list[OwnerSpan]:
    """Spans covering every day of each customer with changes, in customer and date order.
    ``changes`` in any order; several changes on one local day: the last one (by instant, then
    input order) holds from that day."""
    ordered = sorted(changes, key=lambda c: (c.customer_id, c.changed_at))
    spans: list[OwnerSpan] = []
    for customer_id, group in groupby(ordered, key=lambda c: c.customer_id):
        items = list(group)
        start, owner = BEGINNING, items[0].from_staff_id
        for change in items:
            day = change.changed_at.astimezone(zone).date()
            if day > start:
                spans.append(OwnerSpan(customer_id, start, day, owner))
                start = day
            owner = change.to_staff_id
        spans.append(OwnerSpan(customer_id, start, END, owner))
    return spans


def owner_on(spans: Iterable[OwnerSpan], customer_id: int, day: date) -> int | None:
    """The owner on ``day`` by ``spans`` (a reference for tests; the SQL joins the spans)."""
    for span in spans:
        if span.customer_id == customer_id and span.valid_from <= day < span.valid_to:
            return span.staff_id
    raise LookupError(f"customer {customer_id} has no span on {day}")
