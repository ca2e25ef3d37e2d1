"""``crm run FLOW [--as-of DATE] [--dry-run]``: run one flow once, now, as a real Prefect run.

Calling the flow function in-process is a full Prefect flow run (states, task runs, logs,
artifacts). It goes to the local server when ``crm server start`` runs one (so the run shows in
the UI), to ``PREFECT_API_URL`` when that is set, and to Prefect's ephemeral API otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from sqlalchemy.engine import make_url

from crm_cli.commands.server import healthy_server_api_url
from crm_cli.console import console_without_tracebacks
from crm_cli.debug_mode import debugging
from crm_cli.errors import one_line
from crm_core.settings import get_settings
from crm_db.setup_errors import DatabaseSetupError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

API_URL_ENV = "PREFECT_API_URL"


def _configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, Prefect's profile or a test harness, if any."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get(API_URL_ENV) or PREFECT_API_URL.value() or None


def _api_target() -> tuple[str | None, AbstractContextManager[Any]]:
    """Which Prefect API the run goes to, and a context that points Prefect at it."""
    configured = _configured_api_url()
    if configured:
        return configured, nullcontext()
    local = healthy_server_api_url()
    if local is None:
        return None, nullcontext()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect reads its settings when first imported (other commands may have imported it
    # already), so the environment alone is not enough; child processes get the variable too.
    os.environ[API_URL_ENV] = local
    return local, temporary_settings(updates={PREFECT_API_URL: local})


def _database_display() -> str:
    url = make_url(get_settings().database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite {url.database}"
    return url.render_as_string(hide_password=True)


def _print_summary(summary: Mapping[str, Any]) -> None:
    dry = " (dry run)" if summary.get("dry_run") else ""
    typer.echo(f"{summary.get('flow')} as of {summary.get('as_of')}{dry}: {summary.get('status')}")
    counts: Mapping[str, Any] = summary.get("counts") or {}
    width = max((len(name) for name in counts), default=0)
    for name, value in counts.items():
        typer.echo(f"  {name:<{width}}  {value}")
    for text in summary.get("warnings") or []:
        typer.echo(f"  warning: {text}")


def _print_where_to_look(
    summary: Mapping[str, Any], api_url: str | None, flow_run_id: str | None
) -> None:
    ledger_id = summary.get("ledger_run_id")
    if ledger_id is not None:
        typer.echo(f"Run ledger: flow_runs.id={ledger_id} in {_database_display()}")
    if summary.get("artifact_key"):
        typer.echo(f"Artifact:   {summary['artifact_key']} (Prefect UI > Artifacts)")
    if api_url is None:
        typer.echo(
            "Prefect:    ephemeral API; the run is kept under var/prefect/: "
            "`crm server start` to see it in the UI"
        )
    elif flow_run_id is not None:
        typer.echo(f"Prefect:    {api_url.removesuffix('/api')}/runs/flow-run/{flow_run_id}")


def _require_database(*, at_head: bool) -> None:
    from crm_db.migrate import require_schema
    from crm_db.session import make_engine

    engine = make_engine(create=False)
    try:
        require_schema(engine, at_head=at_head)
    finally:
        engine.dispose()


def _failed_ledger_row(flow_run_id: str | None) -> dict[str, Any]:
    """The ledger row a failed run left (best effort: the failure may be the database itself)."""
    if flow_run_id is None:
        return {}
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from crm_db.models import FlowRun
    from crm_db.session import make_engine

    try:
        engine = make_engine(create=False)
        try:
            with engine.connect() as connection:
                ledger_id = connection.execute(
                    select(FlowRun.id).where(FlowRun.prefect_flow_run_id == flow_run_id)
                ).scalar()
        finally:
            engine.dispose()
    except (SQLAlchemyError, DatabaseSetupError):
        return {}
    return {"ledger_run_id": ledger_id} if ledger_id is not None else {}


def run(
    flow_name: Annotated[str, typer.Argument(metavar="FLOW", help="flow, e.g. healthcheck")],
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of", formats=["%Y-%m-%d"], help="business date (default: today, CRM zone)"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="compute and report; write nothing")
    ] = False,
) -> None:
    """Run FLOW once now through Prefect and print a short summary."""
    from flows.registry import FLOWS, known_flows

    flow_fn = FLOWS.get(flow_name)
    if flow_fn is None:
        raise typer.BadParameter(
            f"unknown flow {flow_name!r}; known flows: {', '.join(known_flows())}",
            param_hint="FLOW",
        )
    run_date: date | None = as_of.date() if as_of is not None else None
    # The healthcheck reports a schema behind the code; every other flow needs it at head.
    _require_database(at_head=flow_name != "healthcheck")
    api_url, api_context = _api_target()
    with api_context, console_without_tracebacks(enabled=not debugging()):
        # Prefect's overloads cannot tell a flow typed ``Flow[..., R]`` returns a State here.
        state = cast("State[Any]", flow_fn(as_of=run_date, dry_run=dry_run, return_state=True))
    flow_run_id = state.state_details.flow_run_id
    run_id_text = str(flow_run_id) if flow_run_id is not None else None
    if not state.is_completed():
        error = state.result(raise_on_failure=False)
        text = one_line(error) if isinstance(error, BaseException) else str(error)
        typer.echo(f"{flow_name}: {state.name}: {text}", err=True)
        _print_where_to_look(_failed_ledger_row(run_id_text), api_url, run_id_text)
        if not debugging():
            typer.echo("(the traceback is in the run's logs, or run `crm --debug run ...`)")
        raise typer.Exit(1)
    summary = state.result()
    if isinstance(summary, Mapping):
        _print_summary(summary)
        _print_where_to_look(summary, api_url, run_id_text)
    else:
        typer.echo(f"{flow_name}: {state.name}: {summary!r}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
