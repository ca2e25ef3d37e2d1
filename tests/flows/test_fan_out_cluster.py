"""The revisits fan-out on a real cluster: the CRM database and a Prefect server (subprocess) on
PostgreSQL, the ``revisits-range`` deployment registered with ``prefect deploy`` from
prefect.yaml, and two process workers polling one pool. A fanned-out run's children must be
picked up by both workers, and the parent's counts must equal an in-process run's on an
identical database.

One server, pool and pair of workers serve every assertion (module fixture): on the shared
2-core machine a server start is 15-40 s and a flow run's process start several seconds, so the
data is small, the children few and the workers poll every second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.events.worker import EventsWorker
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
from prefect.workers.process import ProcessWorker
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from crm_core.settings import reset_settings_cache
from crm_db import migrate
from crm_db.enums import AbcClass
from crm_db.models import OutboxMessage, Revisit
from crm_db.session import dispose_shared_engines, make_engine, session_scope
from flows.revisits import revisits
from tests.conftest import _new_postgres_database
from tests.factories import make_customer, make_org
from tests.flows.conftest import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]
AS_OF = date(2026, 11, 23)
WORKERS = ("fan-worker-1", "fan-worker-2")
PINNED = {"abc_pinned": True, "abc_pinned_reason": "test: keep the class"}
SECRET = "test-secret-key-0123456789abcdef0123"


def _seed(engine: Engine) -> None:
    """Two regions, 60 customers of every class, none contacted yet: all fall due."""
    with session_scope(engine) as session:
        for code in ("EAST", "WEST"):
            org = make_org(session, code)
            for i in range(30):
                klass = (AbcClass.A, AbcClass.B, AbcClass.C)[i % 3]
                make_customer(session, org, abc_class=klass, **PINNED)


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@dataclass
class Cluster:
    api_url: str
    storage: Path
    crm_url: str
    engine: Engine
    baseline_url: str
    baseline: Engine
    logs: Path

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """The test process talking to this cluster's server (and reading its result storage)."""
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

    def tail(self) -> str:
        """The end of every process's log, for a failed assertion's message."""
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("*.log"))
        )


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Own session: teardown signals exactly this process group (the process and its children).
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process group started here at once, then wait (SIGKILL after 15 s)."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_healthy(api_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"Prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"Prefect server not healthy after 180 s:\n{log.read_text()[-3000:]}")


def _prefect(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [*PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _crm_database(url: str) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine)
    _seed(engine)
    return engine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    logs, storage = tmp / "logs", tmp / "storage"
    logs.mkdir()
    with (
        _new_postgres_database("prefect_fan") as prefect_url,
        _new_postgres_database("crm_fan") as crm_url,
        _new_postgres_database("crm_fan_base") as baseline_url,
    ):
        port = free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "CRM_DATABASE_URL", "CRM_TEST_"))
        }
        base.update(
            PREFECT_HOME=str(tmp / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_EXTRA_LOGGERS="crm",
        )
        server_env = dict(
            base,
            PREFECT_SERVER_DATABASE_CONNECTION_URL=make_url(prefect_url)
            .set(drivername="postgresql+asyncpg")
            .render_as_string(hide_password=False),
            PREFECT_UI_ENABLED="false",
            # Only what was asked for runs: no scheduled runs of other deployments.
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        )
        client_env = dict(
            base,
            PREFECT_API_URL=api_url,
            PREFECT_LOCAL_STORAGE_PATH=str(storage),
            CRM_DATABASE_URL=crm_url,
            CRM_SECRET_KEY=SECRET,
            CRM_SMTP_HOST="127.0.0.1",
            CRM_SMTP_PORT=str(free_port()),
            CRM_SMTP_TLS="none",
            CRM_FLOWS_DIR=str(ROOT),
            PREFECT_WORKER_QUERY_SECONDS="1",
        )
        processes: list[subprocess.Popen[bytes]] = []
        engines: list[Engine] = []
        try:
            server_log = logs / "server.log"
            server = _start(
                [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                server_env,
                server_log,
            )
            processes.append(server)
            # The CRM databases are built while the server migrates its own (tens of seconds).
            engines += [_crm_database(crm_url), _crm_database(baseline_url)]
            _wait_healthy(api_url, server, server_log)
            cluster = Cluster(api_url, storage, crm_url, engines[0], baseline_url, engines[1], logs)
            with cluster.client() as client:  # in-process: a CLI call would cost a process start
                client.create_work_pool(
                    WorkPoolCreate(
                        name="crm",
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            for name in WORKERS:
                processes.append(
                    _start(
                        # One run at a time each: two children must go to both workers.
                        [
                            *PREFECT,
                            "worker",
                            "start",
                            "--pool",
                            "crm",
                            "--name",
                            name,
                            "--limit",
                            "1",
                        ],
                        client_env,
                        logs / f"{name}.log",
                    )
                )
            # The workers start while prefect.yaml is deployed: both take seconds of imports.
            _prefect(client_env, "--no-prompt", "deploy", "--name", "revisits-range")
            yield cluster
        finally:
            _stop(processes)
            dispose_shared_engines()
            for engine in engines:
                engine.dispose()


@pytest.fixture
def on_baseline(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's flows write to the baseline database first (the test switches later)."""
    monkeypatch.setenv("CRM_DATABASE_URL", cluster.baseline_url)
    monkeypatch.setenv("CRM_SECRET_KEY", SECRET)
    reset_settings_cache()
    yield
    dispose_shared_engines()
    reset_settings_cache()


def test_fan_out_children_run_on_both_workers_and_sum_to_the_in_process_counts(
    cluster: Cluster, on_baseline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    baseline = cluster.baseline
    with cluster.client() as client:
        # In this process (fan_out=0), on the baseline database.
        expected = revisits(as_of=AS_OF)["counts"]
        assert expected["created"] == _count(baseline, Revisit) == 60
        dispose_shared_engines()

        monkeypatch.setenv("CRM_DATABASE_URL", cluster.crm_url)
        reset_settings_cache()
        started = time.monotonic()
        try:
            fanned = revisits(as_of=AS_OF, fan_out=2, fan_out_timeout_s=150)
        except Exception as exc:
            raise AssertionError(f"fan-out run failed: {exc}\n{cluster.tail()}") from exc
        elapsed = time.monotonic() - started
        children = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["revisits-range"]))
        )

    assert fanned["counts"] == expected, cluster.tail()
    assert _count(cluster.engine, Revisit) == _count(baseline, Revisit)
    assert _count(cluster.engine, OutboxMessage) == _count(baseline, OutboxMessage)
    assert sorted(run.name for run in children) == [
        f"revisits-range {AS_OF.isoformat()} 1/2 (run {fanned['ledger_run_id']})",
        f"revisits-range {AS_OF.isoformat()} 2/2 (run {fanned['ledger_run_id']})",
    ]
    assert all(run.state is not None and run.state.is_completed() for run in children)
    # Each worker takes one run at a time, so the two children went one to each.
    assert {run.labels.get("prefect.worker.name") for run in children} == set(WORKERS), (
        f"children ran on {[run.labels for run in children]} after {elapsed:.0f} s"
    )
