"""Portable bulk statements: ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignoring_conflicts(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> int:
    """Insert ``rows``, skipping any that collide on ``conflict_columns``; returns rows inserted.

    Column types (UTC timestamps, enums) are applied as for any Core insert.
    """
    if not rows:
        return 0
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    # No columns named: skip rows that collide with ANY unique constraint or unique index
    # (including partial ones, such as "one open revisit per customer").
    statement = dialect_insert(table).on_conflict_do_nothing(
        index_elements=list(conflict_columns) or None
    )
    # rowcount is unreliable for batched inserts (and for ON CONFLICT on PostgreSQL); counting
    # the RETURNING rows is exact on both backends (SQLAlchemy batches them as "insertmanyvalues").
    key = list(table.primary_key.columns)[0]
    result = conn.execute(statement.returning(key), list(rows))
    return len(result.all())
