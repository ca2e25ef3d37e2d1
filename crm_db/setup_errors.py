"""What an operator is told when the database is not usable: one line naming the cause and the
next step, never a driver traceback.

Three places raise or translate these: ``make_engine`` checks the URL before connecting (an
unknown scheme, a driver that is not installed, a SQLite file that does not exist when the
command must not create one); ``explain`` turns the errors a first statement meets (no tables:
never migrated; connection refused) into the same kind of line; the CLI prints either.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
URL_HINT = "use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE"
UPGRADE_HINT = "run `crm db upgrade`"
# Substrings of the errors a statement meets when a table is missing, per backend.
_MISSING_TABLE = ("no such table", "undefinedtable", "does not exist")
_CONNECTION_FAILURES = (
    "connection refused",
    "could not connect",
    "connection failed",
    "could not translate host name",
    "timeout expired",
    "unable to open database file",
    "password authentication failed",
)


class DatabaseSetupError(RuntimeError):
    """The database named by ``CRM_DATABASE_URL`` cannot be used as it is; the message is the
    one line to show (no secrets: the password is never part of it)."""


def display(url: str | URL) -> str:
    """Where the database is, for messages: the SQLite path, or the URL without its password."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    return parsed.render_as_string(hide_password=True)


def parse_database_url(url: str) -> URL:
    """The URL, parsed and checked to name a backend crm-flows runs on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseSetupError(f"CRM_DATABASE_URL is not a database URL: {URL_HINT}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseSetupError(
            f"CRM_DATABASE_URL names {backend!r}, which crm-flows does not support: {URL_HINT}"
        )
    return parsed


def require_existing_sqlite_file(parsed: URL) -> None:
    """Commands other than ``crm db upgrade`` never create a database: a mistyped path must not
    leave an empty file (or folder) behind that later looks like a database."""
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return  # a URI filename: SQLite's own flags (mode=ro, ...) decide
    if not Path(database).is_file():
        raise DatabaseSetupError(
            f"no database at {database} (CRM_DATABASE_URL): check the path, or {UPGRADE_HINT} "
            "to create it there"
        )


def missing_driver(parsed: URL, exc: ModuleNotFoundError | NoSuchModuleError) -> DatabaseSetupError:
    name = getattr(exc, "name", None) or str(exc)
    return DatabaseSetupError(
        f"CRM_DATABASE_URL uses {parsed.drivername}, whose driver ({name}) is not installed: "
        "run `make install`, or use postgresql://... (psycopg is installed)"
    )


def explain(exc: BaseException, url: str | URL | None = None) -> str | None:
    """The one line for a database error an operator can fix, or ``None`` when it is not one."""
    if isinstance(exc, DatabaseSetupError):
        return str(exc)
    if not isinstance(exc, SQLAlchemyError):
        return None
    where = f"the database at {display(url)}" if url is not None else "the database"
    text = str(getattr(exc, "orig", None) or exc).lower()
    kind = type(getattr(exc, "orig", None)).__name__.lower()
    if any(marker in text or marker in kind for marker in _MISSING_TABLE) and (
        "table" in text or "relation" in text or "undefinedtable" in kind
    ):
        return (
            f"{where} is missing crm-flows tables (never migrated, or behind the code): "
            f"{UPGRADE_HINT}"
        )
    if isinstance(exc, OperationalError) and any(m in text for m in _CONNECTION_FAILURES):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"cannot connect to {where}: {first}"
    return None


__all__ = [
    "DatabaseSetupError",
    "display",
    "explain",
    "missing_driver",
    "parse_database_url",
    "require_existing_sqlite_file",
]
