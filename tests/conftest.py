"""Shared fixtures: real SQLite files and the real PostgreSQL server, each migrated with Alembic.

PostgreSQL tests run when ``CRM_TEST_POSTGRES_URL`` names a server (CI sets it); each pytest
process gets its own freshly created database, dropped at the end, so parallel runs never collide.
Without the variable they are skipped with a reason that says so (and ``.ci/run`` fails on that).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

# Keep every runtime file of the suite (Prefect home, demo secret, mail) out of the checkout's var/.
_SUITE_VAR = Path(os.environ.get("CRM_TEST_VAR_DIR", "/tmp")) / f"crm-tests-{uuid.uuid4().hex[:8]}"
os.environ["CRM_VAR_DIR"] = str(_SUITE_VAR)

from crm_core.prefect_env import configure_prefect_env  # noqa: E402
from crm_core.settings import reset_settings_cache  # noqa: E402
from crm_db import migrate  # noqa: E402
from crm_db.models import Base  # noqa: E402
from crm_db.session import make_engine  # noqa: E402

configure_prefect_env()

POSTGRES_URL_ENV = "CRM_TEST_POSTGRES_URL"


def postgres_server_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    reset_settings_cache()
    yield
    reset_settings_cache()


def _truncate_all(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("PRAGMA foreign_keys=ON"))


@contextmanager
def _new_postgres_database(prefix: str) -> Iterator[str]:
    """Creates an empty PostgreSQL database on the test server, yields its URL, drops it."""
    server = postgres_server_url()
    if server is None:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_URL_ENV} to run them")
    server_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this pytest process (dropped afterwards)."""
    with _new_postgres_database("crm_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty, unmigrated database of the test's own, once on SQLite and once on PostgreSQL:
    for migration tests, which move it down and up (the shared test database stays at head)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    with _new_postgres_database("crm_mig") as url:
        yield url


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_database_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(_migrated_postgres: Engine) -> Iterator[Engine]:
    """The migrated PostgreSQL database, emptied after each test."""
    yield _migrated_postgres
    _truncate_all(_migrated_postgres)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'crm.sqlite3'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A real SQLite file in the test's temp dir, migrated to head."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")  # type: ignore[no-any-return]
    return request.getfixturevalue("pg_engine")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test API (temporary database) per pytest process for the whole session: it
    takes 6-12 s to start, over a minute on a loaded machine (80 s seen at load 16), hence the
    generous timeout."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
