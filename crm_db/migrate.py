"""Programmatic Alembic: ``crm db upgrade`` and the tests create or upgrade any database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _migration(engine) as config:
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    with _migration(engine) as config:
        command.downgrade(config, revision)


@contextmanager
def _migration(engine: Engine) -> Iterator[Config]:
    """An Alembic config whose migrations run in one transaction on one connection.

    On SQLite, foreign keys are off while the migrations run: a constraint change rebuilds the
    table (copy, drop, rename), and dropping a table that other rows reference would fail, or
    cascade. The pragma only takes effect outside a transaction, so it is set before and reset
    after; before the commit, ``foreign_key_check`` proves the rebuilt tables still hold
    together (a violation rolls everything back). SQLite's transaction is begun explicitly:
    Python's sqlite3 would otherwise commit each DDL statement on its own, and a failed
    migration would leave half-rebuilt tables behind."""
    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()  # ends SQLAlchemy's autobegun (empty) transaction
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN")
                config.attributes["connection"] = connection
                yield config
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        table, rowid, parent, _ = broken[0]
                        raise RuntimeError(
                            f"migration left {len(broken)} rows pointing at missing rows, "
                            f"e.g. {table} row {rowid} -> {parent}: rolled back"
                        )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def require_schema(engine: Engine, *, at_head: bool = True) -> None:
    """Refuse, with one line saying what to do, a database that was never migrated (or, with
    ``at_head``, is behind or ahead of the code): ``crm run`` checks this before a flow starts,
    so an operator sees the fix instead of a failed run with an SQL error in it."""
    from crm_db.setup_errors import UPGRADE_HINT, DatabaseSetupError, display

    revision = current_revision(engine)
    where = f"the database at {display(engine.url)}"
    if revision is None:
        raise DatabaseSetupError(f"{where} has no crm-flows tables yet: {UPGRADE_HINT}")
    head = head_revision()
    if not at_head or revision == head:
        return
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if revision in known:
        raise DatabaseSetupError(
            f"{where} is at revision {revision}, this code needs {head}: {UPGRADE_HINT}"
        )
    raise DatabaseSetupError(
        f"{where} is at revision {revision}, which this code does not know (newer code "
        "migrated it?): run the matching version of crm-flows"
    )
