"""``crm demo seed|answers|fingerprint``: the deterministic demo company in the configured
database."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Final

import typer
from sqlalchemy.engine import make_url

from crm_core.settings import get_settings
from crm_db.session import make_engine

if TYPE_CHECKING:
    from crm_db.demo import SeedProgress

# crm_db.demo.DEMO_AS_OF (a test keeps them equal). The demo package (numpy) is imported only
# when a demo command runs, so it does not slow down every other `crm` command.
DEFAULT_AS_OF: Final = "2026-11-23"

demo_app = typer.Typer(help="Demo data: a deterministic fuel-card company.", no_args_is_help=True)


def _display_url() -> str:
    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def _echo_progress(event: SeedProgress) -> None:
    written = ", ".join(
        f"{table} {rows:,}"
        for table, rows in event.rows.items()
        if table in ("customers", "transactions", "contact_history", "complaints", "targets")
    )
    typer.echo(
        f"  [{event.phase}] {event.customers_done:,}/{event.customers_total:,} customers | "
        f"{event.total_rows:,} rows, {event.rows_per_s:,.0f} rows/s, {event.elapsed_s:.1f} s"
        + (f" | {written}" if written else "")
    )


@demo_app.command("seed")
def seed(
    customers: Annotated[int, typer.Option(min=1, help="number of customers")] = 10_000,
    seed: Annotated[int, typer.Option(min=0, help="random seed: same seed, same data")] = 42,
    as_of: Annotated[
        str,
        typer.Option(
            help="the demo's 'today' (YYYY-MM-DD); a fixed date, so the demo is reproducible"
        ),
    ] = DEFAULT_AS_OF,
    transactions_per_customer: Annotated[
        int, typer.Option(min=0, help="average transactions per customer over 14 months")
    ] = 10,
    reset: Annotated[
        bool, typer.Option("--reset", help="delete every CRM row (policies included) first")
    ] = False,
) -> None:
    """Fill the database with a deterministic fuel-card company (refuses a non-empty one)."""
    from crm_db.demo import DemoDatabaseNotEmptyError, SeedOptions, seed_demo

    options = SeedOptions(
        customers=customers,
        seed=seed,
        as_of=_parse_day(as_of),
        transactions_per_customer=transactions_per_customer,
        reset=reset,
    )
    typer.echo(
        f"seeding {_display_url()}: {customers:,} customers, ~{transactions_per_customer} "
        f"transactions each, seed {seed}, as of {options.as_of}"
    )
    engine = make_engine(create=False)
    try:
        report = seed_demo(engine, options, progress=_echo_progress)
    except DemoDatabaseNotEmptyError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    if report.reset:
        typer.echo(f"reset: deleted {sum(report.reset.values()):,} rows")
    for table, rows in report.rows.items():
        seconds = report.seconds.get(table, 0.0)
        # Rates of tiny tables measure the clock, not the database: shown from 1,000 rows.
        rate = f"{rows / seconds:,.0f} rows/s" if rows >= 1_000 and seconds > 0 else ""
        typer.echo(f"  {table:<20} {rows:>12,}  {rate}")
    added = sum(report.defaults.values())
    typer.echo(
        f"done: {report.total_rows:,} rows in {report.total_seconds:.1f} s "
        f"({report.total_rows / max(report.total_seconds, 1e-9):,.0f} rows/s; indexes "
        f"{report.index_seconds:.1f} s); default policy rows added: {added}"
    )


@demo_app.command("answers")
def answers(
    share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of the open invitations to answer")
    ] = 0.35,
    seed: Annotated[int, typer.Option(min=0, help="random seed: same seed, same answers")] = 42,
) -> None:
    """Answer a share of the open survey invitations with seeded random scores, ratings and
    suggestions, through the answer page's recording code (run surveys next to score them)."""
    from crm_db.types import utcnow
    from tasks.surveys.demo_answers import answer_open_invitations

    engine = make_engine(create=False)
    try:
        result = answer_open_invitations(engine, share=share, seed=seed, now=utcnow())
    finally:
        engine.dispose()
    typer.echo(result.line())


@demo_app.command("fingerprint")
def fingerprint(
    tables: Annotated[bool, typer.Option("--tables", help="one hash per table")] = False,
) -> None:
    """Hash every CRM table in primary-key order: equal hashes, equal data."""
    from crm_db.demo import database_fingerprint, table_fingerprints

    engine = make_engine(create=False)
    try:
        if tables:
            for name, value in table_fingerprints(engine).items():
                typer.echo(f"{name:<28} {value}")
        typer.echo(database_fingerprint(engine))
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
