"""An operator who gets the database wrong reads one line saying what to do, through the real
``crm`` command in a subprocess: no traceback (unless ``--debug``), and a read-only command
never creates a file or folder at a mistyped path."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests.conftest import postgres_server_url

CRM = [sys.executable, "-m", "crm_cli.main"]


def crm(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PREFECT_API_"))}
    env.update(
        CRM_DATABASE_URL=database_url,
        CRM_VAR_DIR=str(tmp_path / "var"),
        PREFECT_HOME=str(tmp_path / "var" / "prefect"),
        CRM_SMTP_TLS="none",
    )
    return subprocess.run(
        [*CRM, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one ``error:`` line and no traceback (exit code 2 when
    the settings themselves are invalid, 1 otherwise)."""
    assert result.returncode in (1, 2), result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "[SQL:" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://somewhere/x", "names 'foo', which crm-flows does not support"),
        ("not a url at all", "CRM_DATABASE_URL: not a database URL"),
        ("mysql://u@127.0.0.1/x", "names 'mysql', which crm-flows does not support"),
        ("postgresql+psycopg2://u@127.0.0.1/x", "whose driver (psycopg2) is not installed"),
    ],
)
def test_a_bad_database_url_is_one_line(tmp_path: Path, url: str, expected: str) -> None:
    line = one_error_line(crm(tmp_path, url, "outbox", "status"))
    assert expected in line and ("sqlite:///" in line or "make install" in line)


@pytest.mark.parametrize("command", [["outbox", "status"], ["db", "current"], ["run", "revisits"]])
def test_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo" / "crm.sqlite3"
    line = one_error_line(crm(tmp_path, f"sqlite:///{missing}", *command))
    assert f"no database at {missing}" in line and "crm db upgrade" in line
    assert not missing.parent.exists()


def test_a_never_migrated_sqlite_file_says_run_upgrade(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    url = f"sqlite:///{empty}"
    for command in (["outbox", "status"], ["run", "revisits", "--as-of", "2026-11-24"]):
        line = one_error_line(crm(tmp_path, url, *command))
        assert str(empty) in line and "run `crm db upgrade`" in line


@pytest.fixture
def empty_postgres_database() -> Iterator[str]:
    server = postgres_server_url()
    if server is None:
        pytest.skip("PostgreSQL tests skipped: set CRM_TEST_POSTGRES_URL to run them")
    name = f"crm_cli_errors_{uuid.uuid4().hex[:8]}"
    admin = make_url(server).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_never_migrated_missing_or_unreachable(
    tmp_path: Path, empty_postgres_database: str
) -> None:
    line = one_error_line(crm(tmp_path, empty_postgres_database, "outbox", "status"))
    assert "run `crm db upgrade`" in line
    assert "run `crm db upgrade`" in one_error_line(
        crm(tmp_path, empty_postgres_database, "run", "revisits")
    )

    missing = make_url(empty_postgres_database).set(database="crm_no_such_database")
    line = one_error_line(crm(tmp_path, missing.render_as_string(False), "outbox", "status"))
    assert line.startswith("error: cannot connect to the database at") and "does not exist" in line

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = make_url(empty_postgres_database).set(port=port)
    line = one_error_line(crm(tmp_path, closed.render_as_string(False), "outbox", "status"))
    assert "cannot connect" in line and "refused" in line.lower()


def test_a_flow_that_fails_prints_its_error_ledger_row_and_link_once(
    tmp_path: Path, sqlite_url: str, sqlite_engine: Engine
) -> None:
    """A failure inside the run (here: a table dropped behind the migrations' back) is one line
    plus where to look; the traceback stays in the run's logs, and ``--debug`` shows it."""
    with sqlite_engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("DROP TABLE transactions")
        conn.commit()
    sqlite_engine.dispose()

    result = crm(tmp_path, sqlite_url, "run", "classify_customers", "--as-of", "2026-11-24")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    # (Prefect's own log line of the final state still quotes the error's full text.)
    assert "Traceback" not in output, output
    failed = [line for line in result.stderr.splitlines() if "classify_customers: Failed" in line]
    assert len(failed) == 1 and "is missing crm-flows tables" in failed[0], result.stderr
    assert "[SQL:" not in failed[0]
    assert "Run ledger: flow_runs.id=1 " in result.stdout

    debug = crm(tmp_path, sqlite_url, "--debug", "run", "classify_customers")
    assert debug.returncode == 1 and "Traceback" in debug.stdout + debug.stderr
