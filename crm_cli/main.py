"""The ``crm`` command. Each module in ``crm_cli/commands`` adds its own commands via ``register``,
so features stay in their own files and this one never needs editing.

``main`` is the entry point: an error an operator can fix (a database that is missing or never
migrated, an unknown URL scheme, ...) ends the command with one line saying what to do, and any
other error with one line too; the traceback only with ``crm --debug ...`` (or ``CRM_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated

import typer

from crm_cli.debug_mode import debugging, enable_debugging
from crm_core.prefect_env import configure_prefect_env

configure_prefect_env()  # before anything imports prefect: offline, PREFECT_HOME under var/

app = typer.Typer(
    name="crm",
    help="crm-flows: scheduled customer-care automation on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold customer data or secrets
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the full traceback when a command fails")
    ] = False,
) -> None:
    """Read the settings before any command runs: a bad setting is one line per problem on
    stderr (the variable and what to do), never a traceback or the value given."""
    from pydantic import ValidationError

    from crm_core.settings import get_settings
    from crm_core.settings_errors import describe_settings_error

    if debug:
        enable_debugging()
    try:
        get_settings()
    except ValidationError as exc:
        if debug:
            raise
        for line in describe_settings_error(exc):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None


def _register_commands() -> None:
    from crm_cli import commands

    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"crm_cli.commands.{module_info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    from crm_cli.errors import explained, one_line

    try:
        app()
    except Exception as exc:  # click's own errors (usage, Abort, Exit) never reach here
        if debugging():
            raise
        known = explained(exc)
        typer.echo(f"error: {known or one_line(exc)}", err=True)
        if known is None:  # an error we did not foresee: the traceback may help
            typer.echo("(run `crm --debug ...` for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
