"""The revisits fan-out on a real cluster: the CRM database and a Prefect server (subprocess) on
PostgreSQL, the ``revisits-range`` deployment registered with ``prefect deploy`` from
prefect.yaml, and two process workers polling one pool (``tests/support/prefect_cluster.py``).
A fanned-out run's children must be picked up by both workers, and the parent's counts must
equal an in-process run's on an identically seeded database.

One server, pool and pair of workers serve every assertion (module fixture): on the shared
2-core machine the server takes 30-45 s to migrate its PostgreSQL database and a flow run's
process several seconds to start, so the data is small, the children few and the workers poll
every second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from sqlalchemy import Engine

from crm_core.settings import reset_settings_cache
from crm_db import migrate
from crm_db.models import OutboxMessage, Revisit
from crm_db.session import dispose_shared_engines, make_engine
from flows.revisits import revisits
from tests.conftest import _new_postgres_database
from tests.factories import count_rows, seed_due_customers
from tests.support.prefect_cluster import PrefectCluster, prefect_cluster
from tests.support.smtp_servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.cluster]

AS_OF = date(2026, 11, 23)
WORKERS = ("fan-worker-1", "fan-worker-2")
SECRET = "test-secret-key-0123456789abcdef0123"


@dataclass
class Cluster:
    prefect: PrefectCluster
    crm_url: str  # what the workers' flow runs write to
    engine: Engine
    baseline_url: str  # seeded alike, for the in-process run
    baseline: Engine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with (
        _new_postgres_database("prefect_fan") as prefect_url,
        _new_postgres_database("crm_fan") as crm_url,
        _new_postgres_database("crm_fan_base") as baseline_url,
    ):
        engines: list[Engine] = []

        def build_crm_databases() -> None:
            for url in (crm_url, baseline_url):
                engine = make_engine(url)
                migrate.upgrade(engine)
                seed_due_customers(engine)
                engines.append(engine)

        crm_env = {
            "CRM_DATABASE_URL": crm_url,
            "CRM_SECRET_KEY": SECRET,
            "CRM_SMTP_HOST": "127.0.0.1",
            "CRM_SMTP_PORT": str(free_port()),
            "CRM_SMTP_TLS": "none",
            # prefect.yaml's job variables template every install setting from the deploying
            # shell (`prefect deploy` fills them in): a run gets these, not the worker's shell.
            "CRM_MODE": "demo",
            "CRM_SMTP_USER": "",
            "CRM_MAIL_FROM": "西湖能源 <crm@example.test>",
            "CRM_COMPANY_NAME": "西湖能源",
            "CRM_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
            "CRM_OPERATOR_EMAILS": "ops@example.test",
        }
        try:
            with prefect_cluster(
                tmp_path_factory.mktemp("cluster"),
                prefect_url,
                crm_env,
                workers=WORKERS,
                # One run at a time each: two children must go to both workers.
                worker_limit=1,
                deployments=["revisits-range"],
                while_server_starts=build_crm_databases,
            ) as prefect:
                yield Cluster(prefect, crm_url, engines[0], baseline_url, engines[1])
        finally:
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
    with cluster.prefect.client() as client:
        # In this process (fan_out=0), on the baseline database.
        expected = revisits(as_of=AS_OF)["counts"]
        assert expected["created"] == count_rows(baseline, Revisit) == 60
        dispose_shared_engines()

        monkeypatch.setenv("CRM_DATABASE_URL", cluster.crm_url)
        reset_settings_cache()
        started = time.monotonic()
        try:
            fanned = revisits(as_of=AS_OF, fan_out=2, fan_out_timeout_s=150)
        except Exception as exc:
            raise AssertionError(f"fan-out run failed: {exc}\n{cluster.prefect.tail()}") from exc
        elapsed = time.monotonic() - started
        children = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["revisits-range"]))
        )

    assert fanned["counts"] == expected, cluster.prefect.tail()
    assert count_rows(cluster.engine, Revisit) == count_rows(baseline, Revisit)
    assert count_rows(cluster.engine, OutboxMessage) == count_rows(baseline, OutboxMessage)
    assert sorted(run.name for run in children) == [
        f"revisits-range {AS_OF.isoformat()} 1/2 (run {fanned['ledger_run_id']})",
        f"revisits-range {AS_OF.isoformat()} 2/2 (run {fanned['ledger_run_id']})",
    ]
    assert all(run.state is not None and run.state.is_completed() for run in children)
    # Each worker takes one run at a time, so the two children went one to each.
    assert {run.labels.get("prefect.worker.name") for run in children} == set(WORKERS), (
        f"children ran on {[run.labels for run in children]} after {elapsed:.0f} s"
    )
