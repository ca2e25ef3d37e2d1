"""Portable bulk statements for SQLite and PostgreSQL.

Two levels: Core inserts that ignore conflicts (column types applied per row), and driver-level
``executemany`` helpers for the hot paths, where SQLAlchemy's typed per-row bind processing
(~20 us a row for a wide table) would dominate. At the driver level, values must be converted
exactly as the column types would store them - ``driver_timestamp`` and ``driver_date`` do that
(a test compares their rows with ORM-inserted ones).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
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


def driver_timestamp(value: datetime | None, dialect: str) -> Any:
    """A UTC timestamp as ``crm_db.types.UTCDateTime`` hands it to the driver: naive UTC text
    (``YYYY-MM-DD HH:MM:SS.ffffff``, SQLAlchemy's SQLite storage format) on SQLite, the aware
    value itself (timestamptz) on PostgreSQL."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass timezone-aware datetimes")
    if dialect == "sqlite":
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value.astimezone(UTC)


def driver_date(value: date, dialect: str) -> Any:
    """A date as SQLAlchemy's ``Date`` stores it: ISO text on SQLite, a date on PostgreSQL."""
    return value.isoformat() if dialect == "sqlite" else value


def insert_statement(conn: Connection, table: str, columns: Iterable[str], suffix: str) -> str:
    """``INSERT INTO table (columns) VALUES (placeholders) suffix`` for ``executemany``, in the
    driver's paramstyle (``?`` for sqlite3, ``%s`` for psycopg)."""
    return multi_row_insert(conn, table, columns, 1, suffix)


def multi_row_insert(
    conn: Connection, table: str, columns: Iterable[str], rows: int, suffix: str
) -> str:
    """One ``INSERT`` of ``rows`` rows (parameters flattened row by row), e.g. to use RETURNING,
    which ``executemany`` cannot. A ``context`` column is cast to jsonb on PostgreSQL."""
    if conn.dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"bulk inserts support sqlite and postgresql, not {conn.dialect}")
    names = list(columns)
    placeholders = ["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(names)
    if conn.dialect.name == "postgresql" and "context" in names:
        placeholders[names.index("context")] = "CAST(%s AS jsonb)"
    values = ", ".join([f"({', '.join(placeholders)})"] * rows)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES {values} {suffix}"
