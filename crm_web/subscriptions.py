"""Database side of unsubscribing: read a customer's mail state, set ``unsubscribed_at`` once, and
clear it again when the customer re-subscribes by their own action (each change audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, select, update

from crm_db.models import ConsentChange, Customer
from crm_db.session import session_scope


@dataclass(frozen=True)
class Subscriber:
    """Just what the pages show; no name, phone or other customer data leaves the database."""

    customer_id: int
    email: str | None
    locale: str
    timezone: str
    unsubscribed_at: datetime | None


def _select_subscriber(
    customer_id: int,
) -> Select[tuple[int, str | None, str, str, datetime | None]]:
    return select(
        Customer.id, Customer.email, Customer.locale, Customer.timezone, Customer.unsubscribed_at
    ).where(Customer.id == customer_id)


def load_subscriber(engine: Engine, customer_id: int) -> Subscriber | None:
    with session_scope(engine) as session:
        row = session.execute(_select_subscriber(customer_id)).one_or_none()
    return None if row is None else Subscriber(*row)


def unsubscribe_customer(engine: Engine, customer_id: int, now: datetime) -> Subscriber | None:
    """Set ``unsubscribed_at = now`` unless already set, and return the resulting state
    (``None`` for an unknown customer). The ``IS NULL`` guard in the UPDATE makes it idempotent
    and race-free on both backends: of two concurrent clicks the first timestamp stays."""
    with session_scope(engine) as session:
        # Core execute: its result has the row count (the ORM's is not typed with it).
        changed = (
            session.connection()
            .execute(
                update(Customer)
                .where(Customer.id == customer_id, Customer.unsubscribed_at.is_(None))
                .values(unsubscribed_at=now)
            )
            .rowcount
        )
        if changed:  # the audit row with the change, once: a second click changes nothing
            session.add(
                ConsentChange(
                    customer_id=customer_id,
                    field="unsubscribed",
                    old_value="false",
                    new_value="true",
                    source="unsubscribe_link",
                    changed_at=now,
                )
            )
        row = session.execute(_select_subscriber(customer_id)).one_or_none()
    return None if row is None else Subscriber(*row)


RESUBSCRIBE_SOURCE = "resubscribe_link"


def resubscribe_customer(engine: Engine, customer_id: int, now: datetime) -> Subscriber | None:
    """Clear ``unsubscribed_at`` (the customer pressed "subscribe again" on the unsubscribe page)
    and return the resulting state (``None`` for an unknown customer). Idempotent like
    ``unsubscribe_customer``: the ``IS NOT NULL`` guard makes a second press change nothing and
    write no second ``consent_changes`` row."""
    with session_scope(engine) as session:
        changed = (
            session.connection()
            .execute(
                update(Customer)
                .where(Customer.id == customer_id, Customer.unsubscribed_at.is_not(None))
                .values(unsubscribed_at=None)
            )
            .rowcount
        )
        if changed:
            session.add(
                ConsentChange(
                    customer_id=customer_id,
                    field="unsubscribed",
                    old_value="true",
                    new_value="false",
                    source=RESUBSCRIBE_SOURCE,
                    changed_at=now,
                )
            )
        row = session.execute(_select_subscriber(customer_id)).one_or_none()
    return None if row is None else Subscriber(*row)
