"""``crm server start|stop|status``: a local Prefect server (API + UI) in the background.

The server keeps its database, pid file and log under ``var/prefect/`` (``PREFECT_HOME``), so
flow runs, artifacts and deployments survive between ``crm run`` calls and show in the UI at
http://127.0.0.1:4200. It also avoids the ephemeral API's start-up cost and its shutdown noise.
``crm run`` uses this server whenever it is up (unless ``PREFECT_API_URL`` says otherwise).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import typer

from crm_core.paths import var_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
# The server needs 6-12 s here on 2 busy cores; CI machines can be slower still.
DEFAULT_START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 25

server_app = typer.Typer(
    help="Local Prefect server (API and UI) under var/prefect/.", no_args_is_help=True
)


@dataclass(frozen=True)
class ServerFiles:
    pid: Path
    url: Path
    log: Path


@dataclass(frozen=True)
class RunningServer:
    pid: int
    api_url: str

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


class ServerError(RuntimeError):
    """The server could not be started or stopped; the message says why (with the log tail)."""


def server_files() -> ServerFiles:
    folder = var_dir() / "prefect"
    folder.mkdir(parents=True, exist_ok=True)
    # Not "server.pid": that is Prefect's own file for `prefect server start --background`.
    return ServerFiles(
        pid=folder / "crm-server.pid", url=folder / "crm-server.url", log=folder / "crm-server.log"
    )


def api_url_for(host: str, port: int) -> str:
    return f"http://{host}:{port}/api"


def server_environment(host: str, port: int) -> dict[str, str]:
    """The server's environment: the UI's API URL follows the port the server listens on.

    Prefect's UI calls ``PREFECT_API_URL`` when that is set (a shell or profile may hold the
    default port's) and otherwise ``PREFECT_SERVER_API_PORT`` (4200 unless set), not the
    ``--port`` it was started with; so on any other port the UI loaded but could not reach its
    API. ``PREFECT_SERVER_UI_API_URL`` wins over both."""
    env = os.environ.copy()
    env["PREFECT_SERVER_UI_API_URL"] = api_url_for(host, port)
    env["PREFECT_SERVER_API_HOST"] = host
    env["PREFECT_SERVER_API_PORT"] = str(port)
    return env


def api_is_healthy(api_url: str, timeout_s: float = 1.0) -> bool:
    """True when ``GET {api_url}/health`` answers 200 (Prefect's own liveness endpoint)."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _reap(pid: int) -> None:
    # A server started by this very process (e.g. in a test) stays a zombie until reaped.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_prefect_process(pid: int) -> bool:
    """The pid is alive and still a Prefect server (pids are reused after a reboot)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else; the health check decides
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs (macOS): trust the pid
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and b"prefect" in cmdline


def running_server() -> RunningServer | None:
    """The server started by ``crm server start``, if its process is still alive."""
    files = server_files()
    try:
        pid = int(files.pid.read_text().strip())
        api_url = files.url.read_text().strip()
    except (OSError, ValueError):
        return None
    return RunningServer(pid, api_url) if _is_prefect_process(pid) else None


def healthy_server_api_url() -> str | None:
    """The API URL of a running, answering local server, else None (``crm run`` uses this)."""
    server = running_server()
    return server.api_url if server and api_is_healthy(server.api_url) else None


def _log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _clear_state(files: ServerFiles) -> None:
    files.pid.unlink(missing_ok=True)
    files.url.unlink(missing_ok=True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The server runs in its own session (process group = its pid): signal the whole group, so
    # any helper processes it spawned go too.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_prefect_process(pid):
            return True
        time.sleep(0.2)
    return not _is_prefect_process(pid)


def stop_server(timeout_s: float = STOP_TIMEOUT_S) -> RunningServer | None:
    """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``); returns what was stopped."""
    files = server_files()
    server = running_server()
    if server is None:
        _clear_state(files)
        return None
    _signal_group(server.pid, signal.SIGTERM)
    if not _wait_gone(server.pid, timeout_s):
        _signal_group(server.pid, signal.SIGKILL)
        if not _wait_gone(server.pid, 5.0):
            raise ServerError(f"Prefect server (pid {server.pid}) did not stop")
    _clear_state(files)
    return server


def start_server(
    host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, timeout_s: float = DEFAULT_START_TIMEOUT_S
) -> tuple[RunningServer, bool]:
    """Start the server in the background and wait until it answers.

    Returns the server and whether it was already running (then nothing is started).
    """
    files = server_files()
    current = running_server()
    if current is not None:
        if api_is_healthy(current.api_url):
            return current, True
        # Alive but not answering: still starting (another ``start``), or wedged.
        if _wait_healthy(current, None, timeout_s):
            return current, True
        raise ServerError(
            f"Prefect server (pid {current.pid}) is running but {current.api_url} does not "
            f"answer; try `crm server stop`. Log tail ({files.log}):\n{_log_tail(files.log)}"
        )
    _clear_state(files)
    api_url = api_url_for(host, port)
    if api_is_healthy(api_url):
        raise ServerError(
            f"another Prefect server already answers at {api_url} (not started by crm): "
            "stop it, or choose another port with --port"
        )
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host]
    command += ["--port", str(port)]
    with files.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: survives this command and the terminal
            close_fds=True,
            env=server_environment(host, port),
        )
    files.pid.write_text(f"{process.pid}\n")
    files.url.write_text(f"{api_url}\n")
    server = RunningServer(process.pid, api_url)
    if _wait_healthy(server, process, timeout_s):
        return server, False
    exited = process.poll() is not None
    if not exited:
        stop_server()
    _clear_state(files)
    reason = "exited" if exited else f"did not answer within {timeout_s:.0f} s"
    raise ServerError(
        f"Prefect server {reason} ({api_url}/health). Log tail ({files.log}):\n"
        f"{_log_tail(files.log)}"
    )


def _wait_healthy(
    server: RunningServer, process: subprocess.Popen[bytes] | None, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if api_is_healthy(server.api_url):
            return True
        if process is not None and process.poll() is not None:
            return False
        if process is None and not _is_prefect_process(server.pid):
            return False
        time.sleep(0.5)
    return api_is_healthy(server.api_url)


@server_app.command("start")
def start(
    host: str = typer.Option(DEFAULT_HOST, help="interface to listen on"),
    port: int = typer.Option(DEFAULT_PORT, envvar="CRM_PREFECT_PORT", help="port of API and UI"),
    timeout: float = typer.Option(DEFAULT_START_TIMEOUT_S, help="seconds to wait for /api/health"),
) -> None:
    """Start the local Prefect server in the background (no-op when it is already running)."""
    try:
        server, already = start_server(host, port, timeout)
    except ServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    state = "already running" if already else "started"
    typer.echo(f"Prefect server {state} (pid {server.pid}): UI {server.ui_url}")
    typer.echo(f"  API {server.api_url}; log {server_files().log}")


@server_app.command("stop")
def stop() -> None:
    """Stop the local Prefect server started by `crm server start`."""
    try:
        server = stop_server()
    except ServerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if server is None:
        typer.echo("Prefect server is not running")
    else:
        typer.echo(f"Prefect server stopped (pid {server.pid})")


@server_app.command("status")
def status() -> None:
    """Show whether the local Prefect server runs and answers (exit code 1 when it does not)."""
    server = running_server()
    if server is None:
        typer.echo("Prefect server is not running (start it with `crm server start`)")
        raise typer.Exit(1)
    if not api_is_healthy(server.api_url):
        typer.echo(f"Prefect server (pid {server.pid}) is running but not answering yet")
        raise typer.Exit(1)
    typer.echo(f"Prefect server is running (pid {server.pid}): UI {server.ui_url}")


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
