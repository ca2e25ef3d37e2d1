"""The schema: migrations build exactly the models, on both backends, and constraints hold."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from crm_db import migrate
from crm_db.enums import AbcClass, CardType, OutboxStatus, RevisitStatus, StaffRole
from crm_db.models import (
    Base,
    Branch,
    ContactHistory,
    Customer,
    OutboxMessage,
    Region,
    Revisit,
    Staff,
)
from crm_db.session import make_engine, session_scope


def _org(session) -> tuple[Branch, Staff]:  # type: ignore[no-untyped-def]
    region = Region(code="R1", name="东区片区")
    session.add(region)
    session.flush()
    branch = Branch(code="B1", name="一号油站", region_id=region.id)
    session.add(branch)
    session.flush()
    manager = Staff(
        external_id="S1",
        name="王经理",
        role=StaffRole.ACCOUNT_MANAGER,
        branch_id=branch.id,
        email="wang@example.test",
    )
    session.add(manager)
    session.flush()
    branch.manager_id = manager.id
    return branch, manager


def _customer(branch: Branch, manager: Staff, ext: str = "C1") -> Customer:
    return Customer(
        external_id=ext,
        name="李四",
        card_type=CardType.FLEET,
        branch_id=branch.id,
        account_manager_id=manager.id,
        first_card_on=date(2025, 3, 1),
    )


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_upgrade_is_repeatable_and_downgrade_empties(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)  # a second upgrade is a no-op, not an error
    tables = set(inspect(engine).get_table_names())
    assert {"customers", "transactions", "email_outbox", "flow_runs", "complaints"} <= tables
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_round_trip_keeps_types(engine: Engine) -> None:
    stamp = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    with session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager)
        customer.abc_class = AbcClass.A
        customer.unsubscribed_at = stamp
        session.add(customer)
    with session_scope(engine) as session:
        loaded = session.scalars(select(Customer)).one()
        assert loaded.card_type is CardType.FLEET
        assert loaded.abc_class is AbcClass.A
        assert loaded.unsubscribed_at == stamp and loaded.unsubscribed_at.tzinfo is not None
        assert loaded.name == "李四"


def test_one_open_revisit_per_customer(engine: Engine) -> None:
    with session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager)
        session.add(customer)
        session.flush()
        session.add(
            Revisit(
                customer_id=customer.id,
                abc_class=AbcClass.A,
                channel="visit",
                due_on=date(2026, 11, 23),
            )
        )
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(
            Revisit(customer_id=1, abc_class=AbcClass.A, channel="visit", due_on=date(2026, 11, 24))
        )
    with session_scope(engine) as session:  # a done one beside an open one is fine
        session.add(
            Revisit(
                customer_id=1,
                abc_class=AbcClass.A,
                channel="visit",
                due_on=date(2026, 10, 1),
                status=RevisitStatus.DONE,
            )
        )
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Revisit)) == 2


def test_outbox_idempotency_key_is_unique(engine: Engine) -> None:
    def message(mid: str) -> OutboxMessage:
        return OutboxMessage(
            idempotency_key="survey:2026Q4:customer:1",
            kind="survey",
            recipient_email="a@example.test",
            message_id=mid,
        )

    with session_scope(engine) as session:
        session.add(message("<1@crm>"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(message("<2@crm>"))
    with session_scope(engine) as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.status is OutboxStatus.PENDING and row.attempts == 0


def test_enum_and_check_constraints(engine: Engine) -> None:
    with pytest.raises(StatementError), session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager)
        customer.card_type = "platinum"  # type: ignore[assignment]
        session.add(customer)
        session.flush()
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager, "C2")
        customer.abc_pinned = True  # a pinned class needs a reason
        session.add(customer)


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager)
        customer.unsubscribed_at = datetime(2026, 1, 1)
        session.add(customer)
        session.flush()


def test_sqlite_pragmas(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def _dangling_contact(engine: Engine) -> None:
    """A contact pointing at a revisit that does not exist, written with foreign keys off (as
    a careless import could)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        conn.exec_driver_sql(
            "INSERT INTO contact_history (customer_id, channel, outcome, occurred_at, revisit_id)"
            " VALUES (404, 'email', 'completed', '2026-01-01 00:00:00', 77)"
        )
        conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.commit()


def test_sqlite_upgrade_rebuilding_referenced_tables_keeps_the_rows_that_reference_them(
    sqlite_url: str,
) -> None:
    """0002 rebuilds ``revisits`` (SQLite cannot drop a constraint in place) while contacts
    reference its rows: foreign keys are off during the migration and checked after."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine, "0001")
    with session_scope(engine) as session:
        branch, manager = _org(session)
        customer = _customer(branch, manager)
        session.add(customer)
        session.flush()
        # In SQL: the 0001 table has a column (escalation_level, dropped by 0005) the model
        # no longer has.
        revisit_id = session.execute(
            text(
                "INSERT INTO revisits (customer_id, abc_class, channel, due_on, status, "
                "needs_reassignment, escalation_level, created_at) VALUES (:c, 'A', 'visit', "
                "'2026-11-23', 'open', 0, 0, '2026-11-23 00:00:00.000000') RETURNING id"
            ),
            {"c": customer.id},
        ).scalar_one()
        session.add(
            ContactHistory(
                customer_id=customer.id,
                channel="visit",
                outcome="completed",
                occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
                revisit_id=revisit_id,
            )
        )
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM contact_history").scalar_one() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # back on
    foreign_keys = {fk["name"] for fk in inspect(engine).get_foreign_keys("revisits")}
    assert "fk_revisits_run_id_flow_runs" not in foreign_keys
    assert "fk_revisits_customer_id_customers" in foreign_keys
    engine.dispose()


def test_sqlite_migration_that_would_leave_broken_references_rolls_back_whole(
    sqlite_url: str,
) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine, "0001")
    _dangling_contact(engine)
    with pytest.raises(RuntimeError, match=r"contact_history row 1 -> \w+: rolled back"):
        migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0001"
    tables = set(inspect(engine).get_table_names())
    assert not {t for t in tables if t.startswith("_alembic_tmp")}
    foreign_keys = {fk["name"] for fk in inspect(engine).get_foreign_keys("revisits")}
    assert "fk_revisits_run_id_flow_runs" in foreign_keys  # the rebuild was undone
    engine.dispose()


def test_0005_downgrade_restores_the_escalation_level_from_the_timestamps(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    # At head, so the models match the table (later revisions add revisit columns); the
    # downgrade passes through them to 0005's.
    migrate.upgrade(engine)
    with session_scope(engine) as session:
        branch, manager = _org(session)
        customers = [_customer(branch, manager, f"E{i}") for i in range(3)]
        session.add_all(customers)
        session.flush()
        stamp = datetime(2026, 11, 30, tzinfo=UTC)
        for i, customer in enumerate(customers):
            session.add(
                Revisit(
                    customer_id=customer.id,
                    abc_class=AbcClass.A,
                    channel="visit",
                    due_on=date(2026, 11, 23),
                    branch_escalated_at=stamp if i >= 1 else None,
                    region_escalated_at=stamp if i >= 2 else None,
                )
            )
        session.flush()
        # The derived level, in SQL (hybrid expression) and in Python.
        levels = session.scalars(select(Revisit.escalation_level).order_by(Revisit.id)).all()
        assert levels == [0, 1, 2]
        assert [r.escalation_level for r in session.scalars(select(Revisit))] == [0, 1, 2]
    migrate.downgrade(engine, "0004")
    with engine.connect() as conn:
        restored = conn.exec_driver_sql(
            "SELECT escalation_level FROM revisits ORDER BY id"
        ).scalars()
        assert list(restored) == [0, 1, 2]
    engine.dispose()
