"""Portable bulk statements for SQLite and PostgreSQL.

Two levels: Core inserts that ignore conflicts (column types applied per row), and driver-level
``executemany`` helpers for the hot paths, where SQLAlchemy's typed per-row bind processing
(~20 us a row for a wide table) would dominate. At the driver level, values must be converted
exactly as the column types would store them - ``driver_timestamp`` and ``driver_date`` do that
(a test compares their rows with ORM-inserted ones).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Connection, Dialect, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import UserDefinedType


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


class _IdList(UserDefinedType[list[int]]):
    """A list of integer ids rendered into the statement as one ``(1,2,3)`` literal."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:  # never a column; required by the base class
        return "BIGINT[]"

    def literal_processor(self, dialect: Dialect) -> Callable[[list[int]], str]:
        def render(ids: list[int]) -> str:
            if isinstance(ids, str | bytes):
                raise TypeError(f"id_list takes a list of integers, not {type(ids).__name__}")
            # operator.index on every value: only integers (no floats, no strings) can reach
            # the SQL text.
            rendered = ",".join(map(str, map(operator.index, ids)))
            return f"({rendered})" if rendered else "(NULL)"  # IN (NULL) matches nothing

        return render


def id_list(name: str) -> BindParameter[list[int]]:
    """An ``IN :name`` parameter for a list of integer ids, rendered as literal integers.

    Bound, thousands of ids are thousands of placeholders, which psycopg re-parses on every call
    (it cannot cache long statements; 2.5x slower at 5,000 ids) and SQLite caps at 32,766.
    Rendered as one literal, not per value (SQLAlchemy's per-value rendering cost 2 us an id:
    0.1 s for a million customers' digests). For ``IN :name`` in ``text()`` only (not
    ``column.in_()``), and never with ``NOT IN``: an empty list renders as ``(NULL)``."""
    return bindparam(name, literal_execute=True, type_=_IdList())


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


# Rows per statement. SQLite binds at most 32,766 parameters per statement; PostgreSQL takes one
# array per column, so its chunks only bound the memory of one statement.
SQLITE_CHUNK_ROWS = 1000
SQLITE_MAX_PARAMETERS = 32_766
POSTGRES_CHUNK_ROWS = 10_000


def insert_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    suffix: str = "",
) -> int:
    """Insert driver-level ``rows`` (one value per column, converted as ``driver_timestamp`` and
    ``driver_date`` do; JSON columns as JSON text); returns how many rows were inserted, so an
    ``ON CONFLICT DO NOTHING`` suffix makes skipped rows visible.

    SQLite: one ``executemany`` per chunk. PostgreSQL: one ``INSERT ... SELECT FROM unnest()``
    per chunk, one array parameter per column - a VALUES list would be re-parsed by the driver
    on every call (psycopg cannot cache a statement with thousands of placeholders), and an
    ``executemany`` pays a protocol round per row."""
    inserted = 0
    if conn.dialect.name == "postgresql":
        for chunk in _chunks(rows, POSTGRES_CHUNK_ROWS):
            sql, params = _unnest_insert(table, columns, chunk, suffix)
            inserted += max(conn.exec_driver_sql(sql, params).rowcount, 0)
        return inserted
    sql = insert_statement(conn, table, columns, suffix)
    for chunk in _chunks(rows, SQLITE_CHUNK_ROWS):
        # sqlite3 sums the rows each execution changed; a row a conflict skipped changes none.
        inserted += max(conn.exec_driver_sql(sql, list(chunk)).rowcount, 0)
    return inserted


def insert_rows_returning(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    suffix: str,
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """``insert_rows`` that hands back the ``returning`` columns of the rows it inserted (a
    row an ``ON CONFLICT DO NOTHING`` in ``suffix`` skipped returns nothing), in no particular
    order. PostgreSQL: one ``INSERT ... SELECT FROM unnest() ... RETURNING`` per chunk; SQLite:
    one multi-row ``VALUES`` insert per chunk (``executemany`` cannot return rows)."""
    tail = f"{suffix} RETURNING {', '.join(returning)}"
    found: list[tuple[Any, ...]] = []
    if conn.dialect.name == "postgresql":
        for chunk in _chunks(rows, POSTGRES_CHUNK_ROWS):
            sql, params = _unnest_insert(table, columns, chunk, tail)
            found.extend(tuple(r) for r in conn.exec_driver_sql(sql, params))
        return found
    size = max(1, min(SQLITE_CHUNK_ROWS, SQLITE_MAX_PARAMETERS // max(1, len(columns))))
    for chunk in _chunks(rows, size):
        if any(len(row) != len(columns) for row in chunk):
            raise ValueError(f"{table}: every row needs one value per column {tuple(columns)}")
        sql = multi_row_insert(conn, table, columns, len(chunk), tail)
        flat = tuple(value for row in chunk for value in row)
        found.extend(tuple(r) for r in conn.exec_driver_sql(sql, flat))
    return found


def update_rows(
    conn: Connection,
    table: str,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> int:
    """``UPDATE table SET columns WHERE keys`` for each driver-level row ``(*keys, *columns)``
    (values as ``insert_rows`` takes them); returns how many rows matched. A key column may also
    be set (``keys=("id", "next_check_at")``, ``columns=("next_check_at",)``: a compare and set).

    PostgreSQL: one ``UPDATE ... FROM unnest()`` per chunk with binary array parameters (no
    per-row round trip, no driver re-parsing); SQLite: one ``executemany`` per chunk."""
    width = len(keys) + len(columns)
    if any(len(row) != width for row in rows):
        raise ValueError(f"{table}: every row needs one value per key and column")
    if not rows or not columns:
        return 0
    updated = 0
    if conn.dialect.name == "postgresql":
        types = _postgres_array_types(table, (*keys, *columns))
        names = [f"k{i}" for i in range(len(keys))] + [f"c{i}" for i in range(len(columns))]
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        assignments = ", ".join(f"{c} = v.c{i}" for i, c in enumerate(columns))
        matches = " AND ".join(f"{table}.{k} = v.k{i}" for i, k in enumerate(keys))
        sql = (
            f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE {matches}"
        )
        for chunk in _chunks(rows, POSTGRES_CHUNK_ROWS):
            params = tuple(list(values) for values in zip(*chunk, strict=True))
            updated += max(conn.exec_driver_sql(sql, params).rowcount, 0)
        return updated
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"UPDATE {table} SET {', '.join(f'{c} = {mark}' for c in columns)} "
        f"WHERE {' AND '.join(f'{k} = {mark}' for k in keys)}"
    )
    n_keys = len(keys)
    for chunk in _chunks(rows, SQLITE_CHUNK_ROWS):
        ordered = [(*row[n_keys:], *row[:n_keys]) for row in chunk]
        updated += max(conn.exec_driver_sql(sql, ordered).rowcount, 0)
    return updated


def _chunks(rows: Sequence[Sequence[Any]], size: int) -> Iterable[Sequence[Sequence[Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _unnest_insert(
    table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], suffix: str
) -> tuple[str, tuple[list[Any], ...]]:
    types = _postgres_array_types(table, tuple(columns))
    if any(len(row) != len(types) for row in rows):
        raise ValueError(f"{table}: every row needs one value per column {tuple(columns)}")
    # %b: arrays travel in binary. The text format quotes every element with a regex in Python
    # (3.7x slower for a 10,000-row chunk).
    arrays = ", ".join(f"%b::{t}[]" for t in types)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {suffix}"
    return sql, tuple(list(values) for values in zip(*rows, strict=True))


@cache
def _postgres_array_types(table: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The element type of each column's array parameter, from the models. Strings travel as
    ``text`` (not ``varchar(n)``: an explicit cast would silently truncate; the INSERT's own
    assignment then refuses a value that is too long)."""
    from crm_db.models import Base

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = []
    for name in columns:
        compiled = Base.metadata.tables[table].c[name].type.compile(dialect=dialect).lower()
        types.append("text" if compiled.startswith(("varchar", "char", "text")) else compiled)
    return tuple(types)


def multi_row_insert(
    conn: Connection, table: str, columns: Iterable[str], rows: int, suffix: str
) -> str:
    """One ``INSERT`` of ``rows`` rows (parameters flattened row by row). A ``context`` column is
    cast to jsonb on PostgreSQL."""
    if conn.dialect.name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"bulk inserts support sqlite and postgresql, not {conn.dialect}")
    names = list(columns)
    placeholders = ["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(names)
    if conn.dialect.name == "postgresql" and "context" in names:
        placeholders[names.index("context")] = "CAST(%s AS jsonb)"
    values = ", ".join([f"({', '.join(placeholders)})"] * rows)
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES {values} {suffix}"
