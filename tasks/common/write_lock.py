"""Write locks, written once for both backends.

SQLite has no row locks and its dialect renders no ``FOR UPDATE``: a writer that must see the
committed state before it decides takes the database's single write lock at BEGIN
(``BEGIN IMMEDIATE``; a second writer waits ``busy_timeout`` for it instead of failing later on a
stale snapshot). PostgreSQL locks just the rows (``SELECT ... FOR UPDATE``), and claims skip rows
another worker holds (``SKIP LOCKED``) instead of waiting for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select
from sqlalchemy.orm import Session

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])


def begin_write(conn: Connection) -> None:
    """Start ``conn``'s transaction as a writer. Must come before anything else in the
    transaction: pysqlite opens a deferred transaction lazily, and an explicit BEGIN IMMEDIATE
    after it would fail. Nothing on PostgreSQL (row locks come from ``for_update``)."""
    if conn.dialect.name == "sqlite" and not _sqlite_in_transaction(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_in_transaction(conn: Connection) -> bool:
    """Whether pysqlite has a transaction open already. It opens one only before a write (or
    at our BEGIN IMMEDIATE), so an open one holds the write lock: a writer nested in a longer
    write transaction (the complaint check assigning complaints through the lifecycle, an import,
    ``crm complaint recompute``) keeps it instead of failing on a second BEGIN."""
    return bool(conn.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]


@contextmanager
def write_transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A short write transaction on ``bind`` (an engine, or a connection held by the caller),
    committed at the end, rolled back on any error; on SQLite it holds the write lock from BEGIN."""
    if isinstance(bind, Engine):
        with bind.connect() as conn, write_transaction(conn) as same:
            yield same
        return
    begin_write(bind)
    try:
        yield bind
        bind.commit()
    except BaseException:
        bind.rollback()
        raise


def for_update(statement: S, *, skip_locked: bool = False) -> S:
    """``statement`` locking the rows it selects (PostgreSQL; SQLite renders no FOR UPDATE, so
    the caller holds the write lock of ``begin_write``). ``skip_locked``: leave out rows another
    transaction holds (claims), instead of waiting for them."""
    return statement.with_for_update(skip_locked=skip_locked)


def lock_rows(session: Session, statement: Select[Any]) -> None:
    """Serialise writers on the rows ``statement`` selects, for the rest of ``session``'s
    transaction: the database write lock on SQLite, the rows' locks on PostgreSQL."""
    conn = session.connection()
    begin_write(conn)
    if conn.dialect.name != "sqlite":
        session.execute(for_update(statement))


def get_for_update(session: Session, entity: type[T], ident: Any) -> T | None:
    """``session.get`` with the row locked as ``lock_rows`` does (the first statement of the
    transaction on SQLite)."""
    begin_write(session.connection())
    return session.get(entity, ident, with_for_update=True)


__all__ = ["begin_write", "for_update", "get_for_update", "lock_rows", "write_transaction"]
