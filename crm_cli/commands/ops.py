"""``crm ops deploy`` and ``crm ops automations``: put this checkout's deployments and the
failure-alert automation on a Prefect server (``PREFECT_API_URL``, else ``crm server start``'s).

``deploy`` first checks that every ``{{ $CRM_X }}`` job variable of ``prefect.yaml`` is set in
this shell (``prefect deploy`` would leave an unset one as that text, and every scheduled run
would fail on it), then creates the ``crm`` work pool if it is missing, runs ``prefect --no-prompt
deploy --all`` and creates or updates the automation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import typer

from crm_cli.commands.run import _api_target
from crm_core.paths import PROJECT_ROOT

ops_app = typer.Typer(help="Deployments and the failure-alert automation.", no_args_is_help=True)
WORK_POOL = "crm"
_PLACEHOLDER = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")
# Read by the worker at run time (pull step), not filled in at deploy time.
_RUNTIME_VARIABLES = frozenset({"CRM_FLOWS_DIR"})


def unset_deploy_variables(config: str, environ: dict[str, str]) -> list[str]:
    """The ``{{ $X }}`` variables of ``prefect.yaml``'s text that ``environ`` lacks."""
    # Comments (which mention the syntax) are not read by `prefect deploy`.
    text = "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))
    names = set(_PLACEHOLDER.findall(text)) - _RUNTIME_VARIABLES
    return sorted(name for name in names if name not in environ)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _api_env() -> dict[str, str]:
    api_url, _ = _api_target()
    if api_url is None:
        raise _fail("no Prefect server: start one with `crm server start` or set PREFECT_API_URL")
    return {**os.environ, "PREFECT_API_URL": api_url}


def _prefect(env: dict[str, str], *args: str, check: bool = True) -> int:
    command = [sys.executable, "-m", "prefect", *args]
    result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=False)
    if check and result.returncode != 0:
        raise _fail(f"`prefect {' '.join(args)}` failed (exit {result.returncode})")
    return result.returncode


def _ensure_automation() -> None:
    from tasks.ops.automations import AUTOMATION_NAME, ensure_failure_alert_automation

    try:
        result = ensure_failure_alert_automation()
    except LookupError as exc:
        raise _fail(str(exc)) from exc
    verb = "created" if result.created else "updated"
    typer.echo(f"automation {AUTOMATION_NAME} {verb} ({result.automation_id})")


@ops_app.command("deploy")
def deploy() -> None:
    """Check the CRM_* job variables, create the work pool, deploy prefect.yaml, add the alert."""
    config = (PROJECT_ROOT / "prefect.yaml").read_text()
    if missing := unset_deploy_variables(config, dict(os.environ)):
        raise _fail(
            f"{', '.join(missing)} not set: prefect.yaml fills the deployments' job variables "
            "from this shell (empty is allowed, e.g. CRM_SMTP_USER= for no login)",
            2,
        )
    env = _api_env()
    quiet = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "inspect", WORK_POOL],
        env=env,
        capture_output=True,
        check=False,
    )
    if quiet.returncode != 0:
        _prefect(env, "work-pool", "create", WORK_POOL, "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")
    automations()


@ops_app.command("automations")
def automations() -> None:
    """Create or update the automation that runs notify_failure for a failed or crashed run."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url = _api_env()["PREFECT_API_URL"]
    # Prefect read its settings at import, maybe before PREFECT_API_URL was set: say it again.
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        _ensure_automation()


def register(app: typer.Typer) -> None:
    app.add_typer(ops_app, name="ops")
