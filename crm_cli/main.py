"""The ``crm`` command. Each module in ``crm_cli/commands`` adds its own commands via ``register``,
so features stay in their own files and this one never needs editing."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from crm_core.prefect_env import configure_prefect_env

configure_prefect_env()  # before anything imports prefect: offline, PREFECT_HOME under var/

app = typer.Typer(
    name="crm",
    help="crm-flows: scheduled customer-care automation on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold customer data or secrets
)


def _register_commands() -> None:
    from crm_cli import commands

    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"crm_cli.commands.{module_info.name}")
        module.register(app)


_register_commands()

if __name__ == "__main__":
    app()
