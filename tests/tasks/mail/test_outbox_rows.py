"""enqueue's driver-level rows keep the outbox contract (values, validation, idempotency,
the caller's transaction) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from crm_db.enums import OutboxStatus
from crm_db.models import Customer, OutboxMessage
from crm_db.session import session_scope
from tasks.mail.outbox import InvalidOutboxMessage, checked_row, enqueue
from tests.support.outbox_data import (
    care_message,
    digest_message,
    make_customer,
    make_staff,
    outbox_rows,
)

NOW = datetime(2026, 3, 2, 1, 0, 0, 123456, tzinfo=UTC)
_COMPARED = (
    "kind",
    "locale",
    "recipient_email",
    "recipient_name",
    "customer_id",
    "staff_id",
    "context",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "run_id",
    "created_at",
    "sent_at",
)


def _count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def test_driver_level_rows_equal_what_the_column_types_store(engine: Engine) -> None:
    """enqueue writes plain tuples to the driver; the same message added through the ORM (typed
    columns: UTCDateTime, JSON, enums) must be stored identically, down to the timestamp text
    SQLite compares in SQL (e.g. ``next_attempt_at <= :now`` when delivery claims)."""
    with session_scope(engine) as session:
        customer = make_customer(session, email="  Zhang.San@Example.TEST ", name=" 张  三 ")
        staff = make_staff(session)
        pairs = [
            (care_message(customer, key="a:care"), care_message(customer, key="b:care")),
            (digest_message(staff, key="a:digest"), digest_message(staff, key="b:digest")),
        ]
        for reference, _ in pairs:
            session.add(OutboxMessage(**checked_row(reference, now=NOW, id_domain="example.test")))
        session.flush()
        result = enqueue(session, [b for _, b in pairs], now=NOW)
    assert (result.inserted, result.existing) == (2, 0)
    by_key = {row.idempotency_key: row for row in outbox_rows(engine)}
    for first, second in (("a:care", "b:care"), ("a:digest", "b:digest")):
        a, b = by_key[first], by_key[second]
        assert {c: getattr(a, c) for c in _COMPARED} == {c: getattr(b, c) for c in _COMPARED}
        assert b.status is OutboxStatus.PENDING and b.created_at == NOW
        assert b.message_id.endswith("@example.test>") and b.message_id != a.message_id
    assert by_key["b:care"].recipient_email == "Zhang.San@example.test"
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT idempotency_key, next_attempt_at, created_at, context FROM email_outbox "
                "WHERE idempotency_key IN ('a:care', 'b:care') ORDER BY idempotency_key"
            )
        ).all()
    assert stored[0][1:] == stored[1][1:]


def test_existing_and_repeated_keys_are_no_ops(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        first = care_message(customer, key="care:1")
        assert enqueue(session, [first], now=NOW).inserted == 1
    before = outbox_rows(engine)[0]
    with session_scope(engine) as session:
        again = care_message(customer, key="care:1", locale="en")
        other = care_message(customer, key="care:2")
        result = enqueue(session, [again, again, other], now=NOW + timedelta(hours=4))
    assert (result.inserted, result.existing) == (1, 2)
    rows = outbox_rows(engine)
    assert [r.idempotency_key for r in rows] == ["care:1", "care:2"]
    assert rows[0].message_id == before.message_id and rows[0].locale == before.locale


def test_a_bad_message_names_key_and_field_and_inserts_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        good, bad = make_customer(session), make_customer(session)
        messages = [
            care_message(good),
            care_message(bad, key="care:bad", recipient_email="victim@example.test\r\nBcc: x@y"),
        ]
        with pytest.raises(InvalidOutboxMessage) as caught:
            enqueue(session, messages, now=NOW)
    assert (caught.value.idempotency_key, caught.value.field) == ("care:bad", "recipient_email")
    assert "victim" not in str(caught.value)
    assert _count(engine) == 0


def test_naive_now_is_refused(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        with pytest.raises(ValueError, match="timezone-aware"):
            enqueue(session, [care_message(customer)], now=NOW.replace(tzinfo=None))


def test_rows_commit_or_roll_back_with_the_callers_transaction(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer_id = make_customer(session).id

    class FlowFailed(Exception):
        pass

    with pytest.raises(FlowFailed), engine.begin() as conn:
        with session_scope(engine) as session:
            customer = session.get_one(Customer, customer_id)
            message = care_message(customer)
        assert enqueue(conn, [message], now=NOW).inserted == 1
        raise FlowFailed
    assert _count(engine) == 0


def test_more_than_one_chunk_counts_every_row(engine: Engine) -> None:
    with session_scope(engine) as session:
        staff = make_staff(session)
        messages = [digest_message(staff, key=f"digest:{i}") for i in range(2001)]
        assert enqueue(session, messages[:10], now=NOW).inserted == 10
        result = enqueue(session, messages, now=NOW)
    assert (result.inserted, result.existing) == (1991, 10)
    with session_scope(engine) as session:
        distinct = session.scalar(select(func.count(func.distinct(OutboxMessage.message_id))))
    assert distinct == 2001 == _count(engine)
