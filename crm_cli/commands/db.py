"""``crm db upgrade|current``: create or upgrade the CRM database with Alembic."""

from __future__ import annotations

import typer

from crm_core.settings import get_settings
from crm_db import migrate
from crm_db.defaults import ensure_default_policies
from crm_db.session import make_engine, session_scope

db_app = typer.Typer(help="Database schema management (Alembic).", no_args_is_help=True)


def _display_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Create the database if needed and upgrade it to REVISION (default: head); at head, add
    the default policies that are missing and sync the business calendar's public holidays
    (an operator's edits are kept)."""
    engine = make_engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    added: dict[str, int] = {}
    if after == migrate.head_revision():
        with session_scope(engine) as session:
            added = ensure_default_policies(session, timezone=get_settings().timezone)
    engine.dispose()
    typer.echo(f"database {_display_url()}: {before or 'empty'} -> {after}")
    if any(added.values()):
        typer.echo(
            "default policies added: " + ", ".join(f"{k}={v}" for k, v in added.items() if v)
        )


@db_app.command("current")
def current() -> None:
    """Show the database's revision and the code's head revision."""
    engine = make_engine(create=False)
    typer.echo(f"database: {migrate.current_revision(engine) or 'empty'}")
    typer.echo(f"code head: {migrate.head_revision()}")
    engine.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
