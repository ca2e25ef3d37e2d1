"""enqueue: validation, idempotency and the caller's transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from crm_db.enums import OutboxStatus
from crm_db.models import Customer, OutboxMessage
from crm_db.session import session_scope
from tasks.mail.outbox import InvalidOutboxMessage, enqueue, message_id_domain, prepare
from tests.support.outbox_data import (
    care_message,
    digest_message,
    make_customer,
    make_staff,
    outbox_rows,
    queue,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def _count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def test_enqueue_inserts_pending_rows_with_a_fixed_message_id(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session, email="  Zhang.San@Example.TEST ")
        staff = make_staff(session)
        result = enqueue(session, [care_message(customer), digest_message(staff)], now=NOW)
    assert (result.inserted, result.existing) == (2, 0)

    rows = outbox_rows(engine)
    assert [r.kind for r in rows] == ["revisit_care", "revisit_digest"]
    for row in rows:
        assert row.status == OutboxStatus.PENDING
        assert row.attempts == 0
        assert row.next_attempt_at == NOW
        assert row.created_at == NOW
        assert row.message_id.startswith("<") and row.message_id.endswith("@example.test>")
    assert rows[0].message_id != rows[1].message_id
    # Normalised: trimmed, domain lower-cased, local part kept.
    assert rows[0].recipient_email == "Zhang.San@example.test"
    assert rows[0].customer_id is not None and rows[1].staff_id is not None


def test_an_existing_key_is_a_no_op_and_keeps_the_first_message(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        first = care_message(customer, key="care:2026-03:customer:1")
        assert enqueue(session, [first], now=NOW).inserted == 1
    before = outbox_rows(engine)[0]

    again = care_message(customer, key="care:2026-03:customer:1", locale="en")
    result = queue(engine, [again, again], now=NOW.replace(hour=5))

    assert (result.inserted, result.existing) == (0, 2)
    after = outbox_rows(engine)
    assert len(after) == 1
    assert after[0].message_id == before.message_id
    assert after[0].locale == before.locale
    assert after[0].created_at == NOW


def test_repeated_keys_in_one_call_insert_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        message = care_message(customer)
        result = enqueue(session, [message, message, message], now=NOW)
    assert (result.inserted, result.existing) == (1, 2)
    assert _count(engine) == 1


@pytest.mark.parametrize(
    ("field", "email", "name"),
    [
        ("recipient_email", "victim@example.test\r\nBcc: all@example.test", "Li"),
        ("recipient_email", "victim@example.test\nX: y", "Li"),
        ("recipient_email", "not-an-address", "Li"),
        ("recipient_email", "<victim@example.test>", "Li"),
        ("recipient_name", "victim@example.test", "Li\r\nBcc: all@example.test"),
        ("recipient_name", "victim@example.test", "Li\x00Na"),
        ("recipient_name", "victim@example.test", "长" * 201),  # refused, never truncated
    ],
)
def test_a_bad_recipient_names_key_and_field_and_inserts_nothing(
    engine: Engine, field: str, email: str, name: str
) -> None:
    with session_scope(engine) as session:
        good = make_customer(session)
        bad = make_customer(session)
        messages = [
            care_message(good),
            care_message(bad, key="care:bad:1", recipient_email=email, recipient_name=name),
        ]
        with pytest.raises(InvalidOutboxMessage) as caught:
            enqueue(session, messages, now=NOW)
    error = caught.value
    assert error.idempotency_key == "care:bad:1"
    assert error.field == field
    assert "care:bad:1" in str(error) and field in str(error)
    assert "victim" not in str(error)  # the value is personal data: never echoed
    assert _count(engine) == 0  # not even the good message before it


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("kind", {"kind": "no_such_kind"}),
        ("customer_id", {"customer_id": None}),
        ("context", {"context": {"when": datetime(2026, 1, 1)}}),
        ("locale", {"locale": "zh CN\n"}),
        ("idempotency_key", {"key": "care:\r\n:1"}),
    ],
)
def test_other_invalid_fields_are_refused(
    engine: Engine, field: str, changes: dict[str, object]
) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        changes = dict(changes)  # parameters are shared between the two backends' runs
        key = str(changes.pop("key", "care:x:1"))
        with pytest.raises(InvalidOutboxMessage) as caught:
            enqueue(session, [care_message(customer, key=key, **changes)], now=NOW)
    assert caught.value.field == field
    assert _count(engine) == 0


def test_enqueue_commits_or_rolls_back_with_the_callers_transaction(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer_id = make_customer(session).id

    class FlowFailed(Exception):
        pass

    with pytest.raises(FlowFailed), session_scope(engine) as session:
        customer = session.get_one(Customer, customer_id)
        enqueue(session, [care_message(customer)], now=NOW)
        raise FlowFailed  # the flow's own write failed after queueing: nothing may remain
    assert _count(engine) == 0


def test_a_thousand_and_one_messages_go_in_chunks(engine: Engine) -> None:
    with session_scope(engine) as session:
        staff = make_staff(session)
        messages = [digest_message(staff, key=f"digest:{i}") for i in range(1001)]
        result = enqueue(session, messages, now=NOW)
    assert result.inserted == 1001
    assert _count(engine) == 1001
    with session_scope(engine) as session:
        distinct = session.scalar(select(func.count(func.distinct(OutboxMessage.message_id))))
    assert distinct == 1001


def test_message_id_domain_comes_from_the_sender() -> None:
    assert message_id_domain("CRM <crm@mail.example.com>") == "mail.example.com"
    assert message_id_domain("nonsense") == "crm-flows.invalid"


def test_naive_now_is_refused(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        with pytest.raises(ValueError, match="timezone-aware"):
            enqueue(session, [care_message(customer)], now=datetime(2026, 3, 2))


def test_prepared_messages_are_checked_before_any_transaction_and_can_be_narrowed(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        customers = [make_customer(session) for _ in range(3)]
        messages = [care_message(c) for c in customers]
        ids = [c.id for c in customers]
    with pytest.raises(InvalidOutboxMessage):
        prepare(
            [*messages, care_message(customers[0], key="bad", recipient_email="a@b\r\nBcc: x")],
            now=NOW,
            dialect=engine.dialect.name,
        )
    prepared = prepare(messages, now=NOW, dialect=engine.dialect.name)
    narrowed = prepared.for_customers({ids[0], ids[2]})
    with engine.begin() as conn:
        result = narrowed.insert(conn)
    assert (result.inserted, result.existing) == (2, 0)
    assert sorted(r.customer_id for r in outbox_rows(engine)) == [ids[0], ids[2]]
    with engine.begin() as conn:  # inserting the full batch now adds only the missing one
        again = prepared.insert(conn)
    assert (again.inserted, again.existing) == (1, 2)
