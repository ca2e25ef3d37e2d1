"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production shape)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from crm_core.settings import get_settings
from crm_db.setup_errors import (
    missing_driver,
    parse_database_url,
    require_existing_sqlite_file,
)

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


def make_engine(
    url: str | None = None, *, pool_size: int | None = None, create: bool = True
) -> Engine:
    """Create an engine for ``url`` (default: ``CRM_DATABASE_URL``) with backend-specific setup.

    ``create=False`` is for everything but ``crm db upgrade`` and the test and demo setup: a
    SQLite file that does not exist is then an error (``DatabaseSetupError``) instead of a new,
    empty database at a mistyped path. An unknown scheme or a missing driver is the same error,
    raised here rather than from deep inside the first query."""
    settings = get_settings()
    url = url or settings.database_url
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not create:
            require_existing_sqlite_file(parsed)
        elif parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = _create(parsed, url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    size = pool_size or settings.db_pool_size
    engine = _create(parsed, url, pool_size=size, max_overflow=size, pool_pre_ping=True)
    event.listen(engine, "connect", _postgres_session)
    return engine


def _create(parsed: URL, url: str, **kwargs: Any) -> Engine:
    try:
        return create_engine(url, **kwargs)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:  # the dialect imports its driver
        raise missing_driver(parsed, exc) from None


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
    a flow run reuse connections instead of opening a pool each. Flows never create a database
    (``crm db upgrade`` does)."""
    key = url or get_settings().database_url
    if key not in _SHARED:
        _SHARED[key] = make_engine(key, create=False)
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
