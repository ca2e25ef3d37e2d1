"""Migration 0010_owner_changes: creates customer_owner_changes and downgrades cleanly, on
SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from crm_db import migrate


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_0010_up_and_down(engine: Engine) -> None:
    # The fixture's database is at head.
    assert "customer_owner_changes" in _tables(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("customer_owner_changes")}
    assert columns == {
        "id",
        "customer_id",
        "from_staff_id",
        "to_staff_id",
        "changed_at",
        "source",
        "reason",
        "run_id",
    }
    try:
        migrate.downgrade(engine, "0009")
        assert "customer_owner_changes" not in _tables(engine)
        assert "consent_changes" in _tables(engine)  # 0009 stays
    finally:
        migrate.upgrade(engine)
    assert "customer_owner_changes" in _tables(engine)
    indexes = {i["name"] for i in inspect(engine).get_indexes("customer_owner_changes")}
    assert {
        "ix_customer_owner_changes_customer_id",
        "ix_customer_owner_changes_to_changed",
    } <= indexes
