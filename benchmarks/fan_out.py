"""Benchmark: a fanned-out revisits run (child runs on workers) against the single-process run.

    python benchmarks/fan_out.py [--customers 1000000] [--postgres-url URL] [--fan-out 2]
                                 [--workers 2] [--range-size 250000]

Builds the revisits benchmark's synthetic CRM (``benchmarks/revisits.py``: ~3 % of customers
due) in a scratch PostgreSQL database, starts a Prefect server on a second scratch database,
the ``crm`` process pool with ``--workers`` workers (one run at a time each) and the
``revisits-range`` deployment (``prefect deploy``), then in the same run measures:

- single: the ``revisits`` flow with ``fan_out=0`` (its id ranges as task runs in this
  process's threads), wall time of the call;
- fan-out: the same flow with ``fan_out=N``: N child flow runs, each a new process started by a
  worker, plan the id span while this process does the follow-ups, then the digests.

Both start from the dataset as built (what the first wrote is deleted) and must write the same
counts. ``ratio`` = fan-out wall / single wall (below 1 when the children's parallel planning
wins back their start-up). Per child: ``startup`` from the run's creation to its Running state
(worker poll, process start, imports), ``run`` from Running to Completed. On one machine the
children share its cores with everything else, so this measures the cost of fanning out more
than its gain: the gain comes with workers on more machines. Last line: ``RESULT customers=…
single_s=… fan_out_s=… ratio=… children=… child_startup_s=… child_run_s=… load=…``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported at run time after the Prefect environment is set (it imports prefect)
    from tests.support.prefect_cluster import PrefectCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import print_result, say, scratch_postgres_database  # noqa: E402
from benchmarks.revisits import (  # noqa: E402
    AS_OF,
    COMPARED_COUNTS,
    build_dataset,
    reset_flow_outputs,
    settle,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where scratch databases may be created and dropped",
    )
    parser.add_argument("--fan-out", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--range-size", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-fan-out-"))
    secret = "benchmark-only-secret-key-0123456789abcdef"
    with (
        scratch_postgres_database(args.postgres_url, "crm_bench_fan") as crm_url,
        scratch_postgres_database(args.postgres_url, "prefect_bench_fan") as prefect_url,
    ):
        os.environ.update(CRM_VAR_DIR=str(workdir), CRM_DATABASE_URL=crm_url, CRM_SECRET_KEY=secret)
        from crm_core.prefect_env import configure_prefect_env

        configure_prefect_env()
        from tests.support.prefect_cluster import prefect_cluster

        def build() -> None:
            say(f"building {args.customers:,} customers on postgresql (server starting) ...")
            t0 = time.perf_counter()
            build_dataset(crm_url, args.customers, args.seed)
            say(f"  built in {time.perf_counter() - t0:.1f} s")

        crm_env = {"CRM_DATABASE_URL": crm_url, "CRM_SECRET_KEY": secret}
        with prefect_cluster(
            workdir,
            prefect_url,
            crm_env,
            workers=[f"bench-worker-{k}" for k in range(1, args.workers + 1)],
            worker_limit=1,
            deployments=["revisits-range"],
            while_server_starts=build,
        ) as cluster:
            measure(cluster, crm_url, args)


def measure(cluster: PrefectCluster, crm_url: str, args: argparse.Namespace) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from flows.revisits import revisits

    with cluster.client() as client:
        # A first flow run, untimed, so neither side pays for this process's first API calls.
        revisits(as_of=AS_OF, dry_run=True, range_size=args.range_size)
        settle(crm_url)
        started = time.perf_counter()
        single = revisits(as_of=AS_OF, range_size=args.range_size)
        single_s = time.perf_counter() - started
        reset_flow_outputs(crm_url)
        settle(crm_url)
        started = time.perf_counter()
        fanned = revisits(
            as_of=AS_OF, range_size=args.range_size, fan_out=args.fan_out, fan_out_timeout_s=3000
        )
        fan_out_s = time.perf_counter() - started
        children = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["revisits-range"]))
        )
    reset_flow_outputs(crm_url)
    for key in COMPARED_COUNTS:
        if fanned["counts"].get(key) != single["counts"].get(key):
            raise SystemExit(
                f"{key}: fan-out wrote {fanned['counts'].get(key)}, single "
                f"{single['counts'].get(key)}"
            )
    startups, runs = [], []
    for run in children:
        assert run.start_time is not None and run.end_time is not None
        startups.append((run.start_time - run.created).total_seconds() if run.created else 0.0)
        runs.append((run.end_time - run.start_time).total_seconds())
        say(
            f"  {run.name}: worker {run.labels.get('prefect.worker.name')}, start-up "
            f"{startups[-1]:.1f} s, run {runs[-1]:.1f} s"
        )
    counts = single["counts"]
    say(
        f"single process {single_s:.1f} s, fan-out to {len(children)} children {fan_out_s:.1f} s; "
        f"{counts.get('created', 0):,} revisits, {counts.get('care_emails', 0):,} care emails, "
        f"{counts.get('digests', 0):,} digests"
    )
    print_result(
        customers=args.customers,
        single_s=single_s,
        fan_out_s=fan_out_s,
        ratio=fan_out_s / single_s,
        children=len(children),
        child_startup_s=max(startups, default=0.0),
        child_run_s=max(runs, default=0.0),
        load=f"{os.getloadavg()[0]:.1f}",
    )


if __name__ == "__main__":
    main()
