"""The driver-level bulk inserts store exactly what the ORM would, on both backends."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from crm_db import bulk
from crm_db.bulk import driver_date, driver_timestamp, id_list, insert_rows
from crm_db.models import OutboxMessage, Revisit
from tests.factories import make_customer, make_org

NOW = datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC)
_OUTBOX = ("idempotency_key", "kind", "locale", "recipient_email", "recipient_name", "context")
_OUTBOX_FULL = (
    *_OUTBOX,
    "status",
    "attempts",
    "next_attempt_at",
    "message_id",
    "created_at",
)


def _outbox_row(engine: Engine, key: str, context: dict[str, object]) -> tuple[object, ...]:
    stamp = driver_timestamp(NOW, engine.dialect.name)
    return (
        key,
        "revisit_digest",
        "en",
        "a@example.test",
        "A",
        json.dumps(context),
        "pending",
        0,
        stamp,
        f"<{key}@example.test>",
        stamp,
    )


def test_insert_rows_counts_inserted_rows_and_skips_conflicts(engine: Engine) -> None:
    rows = [_outbox_row(engine, f"k:{i}", {"n": i, "名": "田中"}) for i in range(2500)]
    with engine.begin() as conn:
        assert insert_rows(conn, "email_outbox", _OUTBOX_FULL, rows, "") == 2500
    again = [*rows[:10], _outbox_row(engine, "k:new", {})]
    with engine.begin() as conn:
        inserted = insert_rows(
            conn, "email_outbox", _OUTBOX_FULL, again, "ON CONFLICT (idempotency_key) DO NOTHING"
        )
    assert inserted == 1
    with Session(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.idempotency_key == "k:7")
        row = session.scalars(query).one()
    # Read back through the ORM types: JSON decoded, timestamps aware UTC.
    assert row.context == {"n": 7, "名": "田中"}
    assert row.created_at == NOW
    assert row.next_attempt_at == NOW


def test_insert_rows_counts_only_rows_inserted(engine: Engine) -> None:
    # Planning relies on this count to know whether a concurrent run got some customers first.
    with Session(engine) as session:
        org = make_org(session)
        customers = [make_customer(session, org) for _ in range(3)]
        session.commit()
        ids = [c.id for c in customers]
    columns = (
        "customer_id",
        "abc_class",
        "channel",
        "due_on",
        "status",
        "needs_reassignment",
        "created_at",
    )

    def row(customer_id: int) -> tuple[object, ...]:
        dialect = engine.dialect.name
        return (
            customer_id,
            "C",
            "email",
            driver_date(date(2026, 11, 23), dialect),
            "open",
            False,
            driver_timestamp(NOW, dialect),
        )

    suffix = "ON CONFLICT DO NOTHING"
    with engine.begin() as conn:
        first = insert_rows(conn, "revisits", columns, [row(ids[0])], suffix)
    with engine.begin() as conn:
        second = insert_rows(conn, "revisits", columns, [row(i) for i in ids], suffix)
    # The open revisit of the first customer exists: the partial unique index skips it.
    assert (first, second) == (1, 2)
    with Session(engine) as session:
        stored = session.scalars(select(Revisit).order_by(Revisit.id)).all()
    assert sorted(r.customer_id for r in stored) == ids
    assert [r.due_on for r in stored] == [date(2026, 11, 23)] * 3


@pytest.mark.postgres
def test_postgres_refuses_too_long_text_instead_of_truncating(pg_engine: Engine) -> None:
    # An explicit cast to varchar(n) would truncate silently; the arrays travel as text[].
    row = list(_outbox_row(pg_engine, "k:long", {}))
    row[2] = "x" * 50  # locale is VARCHAR(10)
    with pytest.raises(DBAPIError, match="too long"), pg_engine.begin() as conn:
        insert_rows(conn, "email_outbox", _OUTBOX_FULL, [tuple(row)])


@pytest.mark.postgres
def test_postgres_uses_one_statement_per_chunk(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "POSTGRES_CHUNK_ROWS", 1000)
    statements: list[str] = []
    rows = [_outbox_row(pg_engine, f"k:{i}", {}) for i in range(2500)]
    with pg_engine.begin() as conn:
        event.listen(conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        assert insert_rows(conn, "email_outbox", _OUTBOX_FULL, rows) == 2500
    assert len(statements) == 3
    assert all("unnest(" in sql for sql in statements)


@pytest.mark.postgres
def test_insert_rows_rejects_rows_of_the_wrong_width(pg_engine: Engine) -> None:
    with pytest.raises(ValueError, match="one value per column"), pg_engine.begin() as conn:
        insert_rows(conn, "email_outbox", _OUTBOX, [("k", "revisit_digest")])


def test_id_list_renders_integers_and_refuses_anything_else(engine: Engine) -> None:
    query = text("SELECT id FROM customers WHERE id IN :ids ORDER BY id").bindparams(id_list("ids"))
    with Session(engine) as session:
        org = make_org(session)
        ids = [make_customer(session, org).id for _ in range(3)]
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(query, {"ids": [ids[0], ids[2], 10**12]}).scalars().all() == [
            ids[0],
            ids[2],
        ]
        for bad in (["1) OR (1=1"], [1.5], "123"):
            with pytest.raises(StatementError):
                conn.execute(query, {"ids": bad})
        assert conn.execute(query, {"ids": []}).scalars().all() == []  # matches nothing
    # The ids reach the database as one literal list (no placeholders to re-parse).
    sent: list[str] = []

    def record(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            conn.execute(query, {"ids": [ids[1], ids[0]]}).all()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert f"IN ({ids[1]},{ids[0]})" in sent[-1]


def test_insert_rows_returning_hands_back_only_inserted_rows(engine: Engine) -> None:
    rows = [_outbox_row(engine, f"r:{i}", {"n": i}) for i in range(1200)]
    suffix = "ON CONFLICT (idempotency_key) DO NOTHING"
    with engine.begin() as conn:
        first = bulk.insert_rows_returning(
            conn, "email_outbox", _OUTBOX_FULL, rows, suffix, ("id", "idempotency_key")
        )
    assert sorted(key for _, key in first) == sorted(f"r:{i}" for i in range(1200))
    assert len({row_id for row_id, _ in first}) == 1200
    again = [*rows[:3], _outbox_row(engine, "r:new", {})]
    with engine.begin() as conn:
        second = bulk.insert_rows_returning(
            conn, "email_outbox", _OUTBOX_FULL, again, suffix, ("idempotency_key",)
        )
    assert second == [("r:new",)]


def test_update_rows_sets_columns_where_all_keys_match(engine: Engine) -> None:
    dialect = engine.dialect.name
    rows = [_outbox_row(engine, f"u:{i}", {}) for i in range(3)]
    with engine.begin() as conn:
        ids = sorted(
            row_id
            for (row_id,) in bulk.insert_rows_returning(
                conn, "email_outbox", _OUTBOX_FULL, rows, "", ("id",)
            )
        )
    later = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    stamp, stale = driver_timestamp(NOW, dialect), driver_timestamp(later, dialect)
    with engine.begin() as conn:
        # A compare-and-set: the third row's old value does not match, it keeps its own.
        matched = bulk.update_rows(
            conn,
            "email_outbox",
            ("id", "next_attempt_at"),
            ("next_attempt_at", "run_id"),
            [(ids[0], stamp, stale, 1), (ids[1], stamp, stale, None), (ids[2], stale, stale, 3)],
        )
    assert matched == 2
    with Session(engine) as session:
        stored = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    found = [(m.next_attempt_at, m.run_id) for m in stored]
    assert found == [(later, 1), (later, None), (NOW, None)]
