"""Bulk writers for the seed: raw DBAPI ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

Both take rows as tuples of plain values (ints, bools, text; dates and naive-UTC timestamps as
text in SQLAlchemy's SQLite formats), so no ORM object is ever built for bulk data.

Secondary indexes (and on PostgreSQL the foreign keys) of the big tables are dropped before the
load and recreated after it from the definitions the database itself reported, so they come
back exactly as they were; building an index once over sorted data is much cheaper than
updating it row by row (measured: see the seed benchmark). If the process dies in between,
``repair_indexes`` recreates any index the models declare but the database lacks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, Index, inspect, text

from crm_db.models import Base

Row = tuple[Any, ...]


class BulkLoader(Protocol):
    def begin(self) -> None: ...

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None: ...

    def execute(self, sql: str, params: Sequence[Row]) -> None: ...

    def checkpoint(self) -> None:
        """End of a chunk: commit on SQLite (bounded journal); nothing on PostgreSQL."""

    def drop_indexes(self, tables: Sequence[str]) -> None: ...

    def restore_indexes(self) -> dict[str, float]:
        """Recreate what was dropped; returns seconds per index or constraint."""

    def commit(self) -> None: ...

    def abort(self) -> None:
        """Roll back and put back anything dropped; never raises over the original error."""

    def close(self) -> None: ...


class SqliteLoader:
    """One raw sqlite3 connection in manual transaction mode, tuned for a bulk load.

    ``synchronous=OFF`` and a 256 MiB page cache apply to this connection only, which is
    discarded afterwards (so no pooled connection keeps them). Foreign keys are not checked
    during the load: the generator assigns every id itself and the tests check integrity.
    """

    def __init__(self, engine: Engine) -> None:
        self._pooled = engine.raw_connection()
        connection = self._pooled.driver_connection
        if not isinstance(connection, sqlite3.Connection):
            raise TypeError("SqliteLoader needs the sqlite3 driver")
        connection.commit()
        connection.isolation_level = None  # we issue BEGIN/COMMIT ourselves
        for pragma in (
            "foreign_keys=OFF",
            "synchronous=OFF",
            "cache_size=-262144",
        ):
            connection.execute(f"PRAGMA {pragma}")
        self._db = connection
        self._dropped: list[tuple[str, str]] = []

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        marks = ", ".join("?" * len(columns))
        self._db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def execute(self, sql: str, params: Sequence[Row]) -> None:
        self._db.executemany(sql.replace("%s", "?"), params)

    def checkpoint(self) -> None:
        self._db.execute("COMMIT")
        self._db.execute("BEGIN IMMEDIATE")

    def drop_indexes(self, tables: Sequence[str]) -> None:
        for table in tables:
            # sql IS NULL: the automatic indexes behind UNIQUE constraints, which stay.
            found = self._db.execute(
                "SELECT name, sql FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name",
                (table,),
            ).fetchall()
            for name, sql in found:
                self._db.execute(f'DROP INDEX "{name}"')
                self._dropped.append((name, sql))

    def restore_indexes(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for name, sql in self._dropped:
            exists = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).fetchone()
            if exists is None:
                start = time.perf_counter()
                self._db.execute(sql)
                seconds[name] = time.perf_counter() - start
        self._dropped.clear()
        return seconds

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def abort(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if self._dropped:  # dropped in an already committed chunk
                self.begin()
                self.restore_indexes()
                self.commit()
        except sqlite3.Error:
            pass  # the original error is the one to report; repair_indexes runs next time

    def close(self) -> None:
        self._pooled.invalidate()  # closes the tuned connection instead of pooling it


class PostgresLoader:
    """One psycopg connection, one transaction for the whole seed, ``COPY`` for every table.

    Timestamps are written as naive UTC text, so the transaction runs with ``TimeZone=UTC``.
    """

    def __init__(self, engine: Engine) -> None:
        self._pooled = engine.raw_connection()
        connection: Any = self._pooled.driver_connection
        connection.rollback()
        self._db = connection
        self._dropped_indexes: list[tuple[str, str]] = []
        self._dropped_keys: list[tuple[str, str, str]] = []

    def begin(self) -> None:
        self._db.execute("SET LOCAL TIME ZONE 'UTC'")
        self._db.execute("SET LOCAL synchronous_commit = off")

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Row]) -> None:
        with (
            self._db.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def execute(self, sql: str, params: Sequence[Row]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(sql, params)

    def checkpoint(self) -> None:
        return None

    def drop_indexes(self, tables: Sequence[str]) -> None:
        for table in tables:
            keys = self._db.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
                (table,),
            ).fetchall()
            for name, definition in keys:
                self._db.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                self._dropped_keys.append((table, name, definition))
            # Indexes that back a constraint (primary key, unique) stay.
            indexes = self._db.execute(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
                "ORDER BY i.relname",
                (table,),
            ).fetchall()
            for name, definition in indexes:
                self._db.execute(f'DROP INDEX "{name}"')
                self._dropped_indexes.append((name, definition))

    def restore_indexes(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for name, definition in self._dropped_indexes:
            start = time.perf_counter()
            self._db.execute(definition)
            seconds[name] = time.perf_counter() - start
        for table, name, definition in self._dropped_keys:
            start = time.perf_counter()
            self._db.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            seconds[name] = time.perf_counter() - start
        self._dropped_indexes.clear()
        self._dropped_keys.clear()
        return seconds

    def reset_sequences(self, tables: Sequence[str]) -> None:
        """Explicit ids bypass the sequences: move each past the largest id written."""
        for table in tables:
            self._db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )

    def commit(self) -> None:
        self._db.commit()

    def abort(self) -> None:
        # DDL is transactional: the rollback undoes the drops too. The original error is the
        # one to report, so a failing rollback (e.g. a lost connection) is not raised over it.
        with contextlib.suppress(Exception):
            self._db.rollback()

    def close(self) -> None:
        self._pooled.close()


def open_loader(engine: Engine) -> SqliteLoader | PostgresLoader:
    if engine.dialect.name == "sqlite":
        return SqliteLoader(engine)
    if engine.dialect.name == "postgresql":
        return PostgresLoader(engine)
    raise ValueError(f"demo seeding supports SQLite and PostgreSQL, not {engine.dialect.name}")


def repair_indexes(engine: Engine) -> list[str]:
    """Create every index the models declare but the database lacks (after an interrupted
    seed); returns their names."""
    created: list[str] = []
    with engine.begin() as connection:
        inspector = inspect(connection)
        for table in Base.metadata.sorted_tables:
            present = {ix["name"] for ix in inspector.get_indexes(table.name)}
            for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
                if isinstance(index, Index) and index.name not in present:
                    index.create(connection)
                    created.append(str(index.name))
    return created


def table_names() -> list[str]:
    return [table.name for table in Base.metadata.sorted_tables]


def count_rows(engine: Engine, tables: Sequence[str]) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in tables
        }
