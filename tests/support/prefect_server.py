"""A real Prefect server, deployments and a process worker, for end-to-end tests: what
``make serve`` runs, each in a subprocess of its own, under a temp ``PREFECT_HOME`` (so its own
SQLite database) on a free port. Nothing here talks to the test harness's API.

Every process is started in its own session and ended by its pid (its process group: the
worker's flow-run subprocesses go too).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from tests.support.smtp_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
T = TypeVar("T")


@dataclass
class PrefectStack:
    """The server's API URL, the environment the CLI, the worker and the flows run with, and
    the processes to end."""

    api_url: str
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``prefect ARGS`` from the checkout (prefect.yaml), failing loudly with its output."""
        result = subprocess.run(
            [*PREFECT, *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                command,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start_worker(self, pool: str = "crm", limit: int = 4) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", [*PREFECT, "worker", "start", "--pool", pool, "--limit", str(limit)]
        )

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        self.processes.clear()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """SIGTERM to the process group of ``process`` (by its pid), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_for(
    check: Callable[[], T | None],
    timeout_s: float,
    what: str,
    step_s: float = 0.5,
    stack: PrefectStack | None = None,
) -> T:
    """``check()``'s first truthy value; on timeout an error with the processes' log tails."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step_s)
    logs = ""
    if stack is not None:
        logs = "".join(f"\n--- {name}:\n{stack.log(name)}" for name in ("worker", "server"))
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{logs}")


def base_environment(tmp: Path, crm: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without its Prefect and CRM settings, plus ``crm``'s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CRM_"))}
    env.update(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        # The worker asks for work every second, not every 15: the test waits on it.
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
        PREFECT_LOGGING_EXTRA_LOGGERS="crm",
        CRM_VAR_DIR=str(tmp / "var"),
        CRM_FLOWS_DIR=str(ROOT),
        **crm,
    )
    return env


@contextlib.contextmanager
def prefect_stack(
    tmp: Path, crm: Mapping[str, str], timeout_s: float = 180
) -> Iterator[PrefectStack]:
    """A started Prefect server (API and UI) with the ``crm`` process work pool."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = base_environment(tmp, crm)
    stack = PrefectStack(api_url, env, logs)
    server_env = {
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_UI_API_URL": api_url,
    }
    stack.env = {**env, **server_env}
    server = stack.start(
        "server", [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    )
    stack.env = {**env, "PREFECT_API_URL": api_url}
    try:
        wait_for(
            lambda: server.poll() is None and _healthy(api_url) or _exited(server, stack),
            timeout_s,
            "the Prefect server",
        )
        create_process_pool(api_url, "crm")
        yield stack
    finally:
        stack.stop()


def _exited(server: subprocess.Popen[bytes], stack: PrefectStack) -> bool:
    if server.poll() is not None:
        raise AssertionError(f"Prefect server exited:\n{stack.log('server')}")
    return False


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def create_process_pool(api_url: str, name: str) -> None:
    """``prefect work-pool create NAME --type process``, in this process (the CLI would cost
    a Python start-up with Prefect's imports, 10-60 s on a loaded machine)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as c:
        c.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
