"""``crm import KIND FILE.csv`` (customers, transactions, complaints, contacts, targets; targets
also from FILE.xlsx) and ``crm import columns``.

Exit codes: 0 imported (or header only: nothing to import), 1 the file has errors (each printed
as ``FILE:LINE: field: problem``; nothing written), 2 usage error, 3 the database failed
(rolled back; nothing written).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from crm_core.settings import get_settings
from crm_db.csv_import import KINDS, FieldError, ImportAborted, ImportOptions, import_csv
from crm_db.csv_import.docs import column_table
from crm_db.session import make_engine

EXIT_INVALID = 1
EXIT_DATABASE = 3

import_app = typer.Typer(
    help=(
        "Import CSV files (UTF-8, header line). Every row is validated first; any error and "
        "nothing is written. Otherwise rows are upserted by their key in one transaction. "
        "Import customers before the transactions, complaints and contacts that refer to them."
    ),
    no_args_is_help=True,
)

FileArgument = Annotated[
    Path,
    typer.Argument(
        exists=True, dir_okay=False, readable=True, help="the CSV file (targets: CSV or .xlsx)"
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option("--dry-run", help="validate and count inserts/updates, then roll back"),
]


def _actor() -> str:
    """Who runs the import, as the operating system names them (recorded with target versions)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(kind: str, file: Path, dry_run: bool) -> None:
    settings = get_settings()
    shown = str(file)

    def report(error: FieldError) -> None:
        typer.echo(error.format(shown), err=True)

    options = ImportOptions(
        now=datetime.now(UTC),
        default_timezone=settings.timezone,
        default_locale=settings.locale,
        allow_test_email_domain=settings.mode == "demo",
        dry_run=dry_run,
        actor=_actor(),
        source_name=file.name,
    )
    engine = make_engine(create=False)
    try:
        result = import_csv(engine, kind, file, options, report)
    except ImportAborted as exc:
        typer.echo(f"{shown}: import failed: {exc}", err=True)
        raise typer.Exit(EXIT_DATABASE) from None
    except OSError as exc:
        typer.echo(f"{shown}: cannot read the file: {exc.strerror or type(exc).__name__}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except SQLAlchemyError as exc:
        typer.echo(
            f"{shown}: cannot read the reference data ({type(exc).__name__}); "
            "is the database reachable and upgraded (crm db upgrade)?",
            err=True,
        )
        raise typer.Exit(EXIT_DATABASE) from None
    finally:
        engine.dispose()
    if not result.ok:
        typer.echo(
            f"{shown}: {result.errors} error(s) in {kind} file; nothing was imported", err=True
        )
        raise typer.Exit(EXIT_INVALID)
    if result.rows == 0:
        typer.echo(f"{shown}: header only, nothing to import")
        return
    counts = result.counts
    prefix = "dry run, rolled back: would have " if dry_run else ""
    typer.echo(
        f"{shown}: {kind}: {prefix}inserted {counts.inserted}, updated {counts.updated}, "
        f"unchanged {counts.unchanged}"
    )


def _command_for(kind: str) -> Callable[[Path, bool], None]:
    spec = KINDS[kind]

    def command(file: FileArgument, dry_run: DryRunOption = False) -> None:
        _run(kind, file, dry_run)

    required = ", ".join(c.name + ("" if c.required else "?") for c in spec.columns)
    command.__doc__ = (
        f"Import {kind} from FILE. Columns (? = may be empty): {required}. "
        f"Formats: crm import columns {kind}."
    )
    return command


for _kind in KINDS:
    import_app.command(_kind)(_command_for(_kind))


@import_app.command("columns")
def columns(
    kind: Annotated[str | None, typer.Argument(help="customers, transactions, ...")] = None,
) -> None:
    """Print the documented columns of each kind of file as Markdown tables."""
    kinds = [kind] if kind else list(KINDS)
    for name in kinds:
        spec = KINDS.get(name)
        if spec is None:
            typer.echo(f"unknown kind {name!r} (known: {', '.join(KINDS)})", err=True)
            raise typer.Exit(2)
        typer.echo(f"### {name}\n\n{column_table(spec)}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
