"""``crm server start|status|stop`` and ``crm run`` against the real local Prefect server, all
through the real command in subprocesses (as ``make demo`` uses them)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.flows.conftest import SmtpCapture, free_port

CRM = [sys.executable, "-m", "crm_cli.main"]


def crm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRM, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


@pytest.fixture
def server_env(tmp_path: Path, sqlite_url: str, sqlite_engine: Engine) -> Iterator[dict[str, str]]:
    """A checkout-like environment of its own: var/ (so PREFECT_HOME and the server's database)
    in tmp_path, the migrated SQLite file, and a free port for the server."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_API_", "PREFECT_SERVER_DATABASE", "CRM_"))
    }
    env.update(
        CRM_VAR_DIR=str(tmp_path / "var"),
        PREFECT_HOME=str(tmp_path / "var" / "prefect"),
        CRM_DATABASE_URL=sqlite_url,
        CRM_PREFECT_PORT=str(free_port()),
        CRM_SMTP_TLS="none",
        CRM_SMTP_PORT=str(free_port()),
    )
    yield env
    crm(env, "server", "stop")  # whatever a failed assertion left behind


def test_server_lifecycle_and_a_flow_run_in_its_ui(
    server_env: dict[str, str], smtp_capture: SmtpCapture
) -> None:
    server_env["CRM_SMTP_PORT"] = str(smtp_capture.port)
    base = f"http://127.0.0.1:{server_env['CRM_PREFECT_PORT']}"

    started = crm(server_env, "server", "start", "--timeout", "180")
    assert started.returncode == 0, started.stderr
    assert "started (pid " in started.stdout and base in started.stdout
    again = crm(server_env, "server", "start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert crm(server_env, "server", "status").returncode == 0
    # The UI in the browser calls the API on the port the server was started on, not 4200.
    ui_settings = httpx.get(f"{base}/ui-settings", timeout=10).json()
    assert ui_settings["api_url"] == f"{base}/api"

    run = crm(server_env, "run", "healthcheck", "--as-of", "2026-01-15")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "healthcheck as of 2026-01-15: ok" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr  # a normal run prints no tracebacks
    match = re.search(rf"{re.escape(base)}/runs/flow-run/([0-9a-f-]{{36}})", run.stdout)
    assert match, run.stdout
    flow_run = httpx.get(f"{base}/api/flow_runs/{match.group(1)}", timeout=10).json()
    assert flow_run["state_type"] == "COMPLETED"
    assert flow_run["parameters"] == {"as_of": "2026-01-15", "dry_run": False}
    artifacts = httpx.post(
        f"{base}/api/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [match.group(1)]}}},
        timeout=10,
    ).json()
    assert [a["key"] for a in artifacts] == ["healthcheck-summary"]

    stopped = crm(server_env, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert crm(server_env, "server", "status").returncode == 1
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/api/health", timeout=2)


def test_start_failure_is_explained_with_the_log_tail(server_env: dict[str, str]) -> None:
    with socket.socket() as blocker:  # the port is taken by something that is not Prefect
        blocker.bind(("127.0.0.1", int(server_env["CRM_PREFECT_PORT"])))
        blocker.listen()

        result = crm(server_env, "server", "start", "--timeout", "120")

    assert result.returncode == 1
    assert "Prefect server exited" in result.stderr
    assert "Log tail" in result.stderr and "already in use" in result.stderr
    assert crm(server_env, "server", "status").returncode == 1
