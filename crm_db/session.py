"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production shape)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crm_core.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_CHECKPOINT_PAGES = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a writer wait instead of
    # failing at once; SQLite leaves foreign keys off unless asked, per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the WAL every ~40 MB instead of every ~4 MB: a planning run writes tens of MB,
    # and each checkpoint ends in an fsync on the committing writer's clock (with the default,
    # commits took 8x longer at a million customers).
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
    cursor.close()


def make_engine(url: str | None = None, *, pool_size: int | None = None) -> Engine:
    """Create an engine for ``url`` (default: ``CRM_DATABASE_URL``) with backend-specific setup."""
    settings = get_settings()
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    size = pool_size or settings.db_pool_size
    engine = create_engine(url, pool_size=size, max_overflow=size, pool_pre_ping=True)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgres_session)
    return engine


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    # No JIT compilation. PostgreSQL compiles a statement whose *estimated* cost passes
    # jit_above_cost, and our batch statements (an id range, a list of ids) are estimated far
    # above what they read (it cannot estimate the per-class due CASE, and expects every listed
    # id to have many rows): compiling took 0.1-0.3 s per statement against 0.05-0.2 s of
    # execution, measured at a million customers. Set per connection (not in the URL's startup
    # options, which connection poolers such as PgBouncer may refuse).
    cursor = dbapi_connection.cursor()
    cursor.execute("SET jit = off")
    cursor.close()
    dbapi_connection.commit()  # a pool's reset-on-return rollback must not undo it


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def backend_name(engine: Engine) -> str:
    return engine.dialect.name


_SHARED: dict[str, Engine] = {}


def shared_engine(url: str | None = None) -> Engine:
    """One engine (and connection pool) per database URL for the whole process, so the tasks of
    a flow run reuse connections instead of opening a pool each."""
    key = url or get_settings().database_url
    if key not in _SHARED:
        _SHARED[key] = make_engine(key)
    return _SHARED[key]


def close_shared_connections() -> None:
    """Close the pooled connections of every shared engine (the engines stay usable and open
    new connections when next asked). Done before forking worker processes: SQLite keeps
    per-process state about the files its connections have open (locks, the WAL index), and a
    child that inherited it would share a lock it does not actually hold."""
    for engine in _SHARED.values():
        engine.dispose(close=True)


def dispose_shared_engines() -> None:
    for engine in _SHARED.values():
        engine.dispose()
    _SHARED.clear()
