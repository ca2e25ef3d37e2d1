"""A Prefect cluster on this machine, for the fan-out test and benchmark: a Prefect server
subprocess on a PostgreSQL database, the process work pool ``crm``, deployments registered with
``prefect deploy`` from prefect.yaml, and process workers polling the pool - each process in a
session of its own, stopped by its process group at the end.

The CRM settings reach the workers (and so their flow runs) through the environment given; the
workers and this process share one local result storage directory, as workers on several
machines would share a result storage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
from prefect.workers.process import ProcessWorker
from sqlalchemy.engine import make_url

from tests.support.smtp_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
POOL = "crm"


@dataclass
class PrefectCluster:
    api_url: str
    storage: Path  # the result storage the workers' flow runs persist to
    logs: Path  # one log file per process
    env: dict[str, str]  # what the workers and the CLI calls run with
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """This process talking to the cluster's server (and reading its result storage); flows
        called inside run against it too."""
        with (
            temporary_settings(
                updates={PREFECT_API_URL: self.api_url, PREFECT_LOCAL_STORAGE_PATH: self.storage}
            ),
            get_client(sync_client=True) as client,
        ):
            try:
                yield client
            finally:
                # Send this process's buffered run logs and events while the server is up
                # (at exit they would retry against a stopped server for tens of seconds).
                with suppress(RuntimeError):  # a worker that never started has nothing to send
                    APILogWorker.instance().drain()
                EventsWorker.drain_all()

    def prefect(self, *args: str) -> None:
        """A ``prefect`` CLI call against the cluster, from the checkout (prefect.yaml)."""
        done = subprocess.run(
            [*PREFECT, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def start(self, name: str, cmd: Sequence[str], env: Mapping[str, str]) -> None:
        # Own session: stopping signals exactly this process group (it and its children).
        with (self.logs / f"{name}.log").open("wb") as out:
            self.processes.append(
                subprocess.Popen(
                    list(cmd),
                    env=dict(env),
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def stop(self) -> None:
        """SIGTERM to every process group started here at once, then wait; SIGKILL after 5 s
        (a worker or the server may take longer to stop gracefully, and nothing of theirs is
        kept: the databases are dropped next)."""
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def tail(self) -> str:
        """The end of every process's log, for a failure's message."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("*.log"))
        )

    def wait_healthy(self, timeout_s: float = 180) -> None:
        server = self.processes[0]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"Prefect server exited:\n{self.tail()}")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Prefect server not healthy after {timeout_s:g} s:\n{self.tail()}")


@contextmanager
def prefect_cluster(
    workdir: Path,
    prefect_database_url: str,
    crm_env: Mapping[str, str],
    *,
    workers: Sequence[str],
    worker_limit: int,
    deployments: Sequence[str],
    while_server_starts: Callable[[], None] = lambda: None,
) -> Iterator[PrefectCluster]:
    """Server, pool, workers and deployments; ``while_server_starts`` runs while the server
    migrates its database (tens of seconds on PostgreSQL), e.g. to build the CRM database."""
    logs, storage = workdir / "logs", workdir / "storage"
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CRM_"))}
    base.update(
        PREFECT_HOME=str(workdir / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_LOGGING_EXTRA_LOGGERS="crm",
    )
    server_env = dict(
        base,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=make_url(prefect_database_url)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False),
        PREFECT_UI_ENABLED="false",
        # Only what is asked for runs: no scheduled runs of the other deployments.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
    )
    api_url = f"http://127.0.0.1:{port}/api"
    env = dict(
        base,
        **crm_env,
        PREFECT_API_URL=api_url,
        PREFECT_LOCAL_STORAGE_PATH=str(storage),
        CRM_FLOWS_DIR=str(ROOT),
        # Workers look for runs every second (default 10): children start sooner.
        PREFECT_WORKER_QUERY_SECONDS="1",
    )
    cluster = PrefectCluster(api_url, storage, logs, env)
    try:
        cluster.start(
            "server",
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            server_env,
        )
        while_server_starts()
        cluster.wait_healthy()
        with cluster.client() as client:  # in-process: a CLI call would cost a process start
            client.create_work_pool(
                WorkPoolCreate(
                    name=POOL,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        for name in workers:
            cluster.start(
                name,
                [*PREFECT, "worker", "start", "--pool", POOL, "--name", name]
                + ["--limit", str(worker_limit)],
                env,
            )
        # The workers start while prefect.yaml is deployed: both take seconds of imports.
        for deployment in deployments:
            cluster.prefect("--no-prompt", "deploy", "--name", deployment)
        yield cluster
    finally:
        cluster.stop()
