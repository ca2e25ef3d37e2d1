"""Plain factory functions for outbox tests: people, queued messages, delivery settings."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from crm_core.settings import Settings
from crm_db.enums import CardType, StaffRole
from crm_db.models import Customer, OutboxMessage, Staff
from crm_db.session import session_scope
from tasks.mail.kinds import KINDS
from tasks.mail.outbox import EnqueueResult, NewMessage, enqueue

TEST_SECRET = "test-secret-key-" + "x" * 32
_serial = itertools.count(1)


def delivery_settings(host: str = "127.0.0.1", port: int = 25, **overrides: Any) -> Settings:
    """Settings for a delivery run against a test server (plaintext unless overridden)."""
    values: dict[str, Any] = {
        "smtp_host": host,
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_timeout_s": 5.0,
        "smtp_data_timeout_s": 5.0,
        "smtp_concurrency": 4,
        "secret_key": TEST_SECRET,
        "mail_from": "CRM Flows <crm@example.test>",
        "public_base_url": "https://crm.example.test",
        "outbox_lease_s": 60.0,
        "outbox_backoff_base_s": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


def make_customer(session: Session, **fields: Any) -> Customer:
    n = next(_serial)
    values: dict[str, Any] = {
        "external_id": f"C{n:06d}",
        "name": f"客户 {n}",
        "email": f"customer{n}@example.test",
        "card_type": CardType.PERSONAL,
        "first_card_on": date(2024, 1, 1),
    }
    values.update(fields)
    customer = Customer(**values)
    session.add(customer)
    session.flush()
    return customer


def make_staff(session: Session, **fields: Any) -> Staff:
    n = next(_serial)
    values: dict[str, Any] = {
        "external_id": f"S{n:06d}",
        "name": f"员工 {n}",
        "email": f"staff{n}@example.test",
        "role": StaffRole.ACCOUNT_MANAGER,
    }
    values.update(fields)
    staff = Staff(**values)
    session.add(staff)
    session.flush()
    return staff


def care_context() -> dict[str, Any]:
    kind = KINDS["revisit_care"]
    return {k: v for k, v in kind.sample_context.items() if k not in kind.delivery_keys}


def digest_context() -> dict[str, Any]:
    return dict(KINDS["revisit_digest"].sample_context)


def care_message(customer: Customer, *, key: str | None = None, **fields: Any) -> NewMessage:
    values: dict[str, Any] = {
        "idempotency_key": key or f"revisit_care:test:customer:{customer.id}",
        "kind": "revisit_care",
        "locale": customer.locale,
        "recipient_email": customer.email,
        "recipient_name": customer.name,
        "customer_id": customer.id,
        "staff_id": None,
        "context": care_context(),
    }
    values.update(fields)
    return NewMessage(**values)


def digest_message(staff: Staff, *, key: str | None = None, **fields: Any) -> NewMessage:
    values: dict[str, Any] = {
        "idempotency_key": key or f"revisit_digest:test:staff:{staff.id}",
        "kind": "revisit_digest",
        "locale": staff.locale,
        "recipient_email": staff.email,
        "recipient_name": staff.name,
        "customer_id": None,
        "staff_id": staff.id,
        "context": digest_context(),
    }
    values.update(fields)
    return NewMessage(**values)


def queue_customers(engine: Engine, count: int, *, now: datetime, **fields: Any) -> list[int]:
    """``count`` customers with one care email each, queued; returns the outbox row ids."""
    with session_scope(engine) as session:
        customers = [make_customer(session, **fields) for _ in range(count)]
        enqueue(session, [care_message(c) for c in customers], now=now)
    return outbox_ids(engine)


def queue(engine: Engine, messages: list[NewMessage], *, now: datetime) -> EnqueueResult:
    with session_scope(engine) as session:
        return enqueue(session, messages, now=now)


def outbox_ids(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id)))


def outbox_rows(engine: Engine) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def outbox_row(engine: Engine, row_id: int) -> OutboxMessage:
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        return row
