"""The flow's worker processes: real forked workers, compared with running inline."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from crm_db.session import shared_engine
from tasks.worker_processes import (
    FORK_IS_SAFE,
    PROCESSES_ENV,
    WorkerError,
    WorkerPool,
    _call_in_worker,
    engine_for,
    flow_processes,
)
from tests.support.processes import is_alive, live_children

needs_fork = pytest.mark.skipif(not FORK_IS_SAFE, reason="worker processes are Linux-only")


def _where_and_count(url: str) -> tuple[int, bool, int, int]:
    """Runs in a worker: its pid, whether it uses the shared engine, a query through the engine
    it uses and the connections that engine has opened so far."""
    engine = engine_for(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
    return os.getpid(), engine is shared_engine(url), count, engine.pool.checkedin()  # type: ignore[attr-defined]


def _die() -> None:
    os._exit(3)


def _pid() -> int:
    return os.getpid()


@needs_fork
def test_a_forked_worker_keeps_its_own_engine_and_connection(
    sqlite_url: str, sqlite_engine: Engine
) -> None:
    with shared_engine(sqlite_url).connect() as conn:  # leaves a pooled connection open
        conn.execute(text("SELECT 1"))
    assert shared_engine(sqlite_url).pool.checkedin() == 1  # type: ignore[attr-defined]
    with WorkerPool(processes=1) as workers:
        # Forked with no database connection open in the parent.
        assert shared_engine(sqlite_url).pool.checkedin() == 0  # type: ignore[attr-defined]
        first = workers.run(_where_and_count, sqlite_url)
        second = workers.run(_where_and_count, sqlite_url)
    assert first[0] == second[0] != os.getpid()
    assert first[1:] == second[1:] == (False, 0, 1)  # its own engine, one connection, reused
    # The same function inline runs here, on the shared engine.
    with WorkerPool(processes=0) as inline:
        pid, shared, count, _ = inline.run(_where_and_count, sqlite_url)
    assert (pid, shared, count) == (os.getpid(), True, 0)


@needs_fork
def test_a_dead_worker_fails_its_call_and_the_rest_of_the_run_works_inline() -> None:
    with WorkerPool(processes=1) as workers:
        with pytest.raises(BrokenProcessPool):
            workers.run(_die)
        # No new fork from whichever thread asks next: the calls run in the caller.
        assert workers.run(_pid) == os.getpid()


class _NeedsTwoArguments(Exception):
    def __init__(self, record: str, field: str) -> None:
        super().__init__(f"{record}: {field} is wrong")


def _raise_unpicklable() -> None:
    raise _NeedsTwoArguments("customer 7", "locale")


def _raise_plain() -> None:
    raise ValueError("range 1-100: bad threshold")


@needs_fork
def test_a_worker_exception_comes_back_with_its_text_and_the_pool_survives() -> None:
    with WorkerPool(processes=1) as workers:
        with pytest.raises(ValueError, match="range 1-100: bad threshold"):
            workers.run(_raise_plain)
        # Its class cannot be rebuilt from a pickle (two __init__ arguments): without care the
        # parent would declare the whole pool broken.
        with pytest.raises(WorkerError, match="_NeedsTwoArguments: customer 7: locale is wrong"):
            workers.run(_raise_unpicklable)
        assert workers.run(_pid) != os.getpid()  # still the worker: the pool is intact


@needs_fork
def test_the_pool_refuses_work_once_closed() -> None:
    with WorkerPool(processes=1) as workers:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        workers.run(_pid)


def test_no_processes_means_the_calling_thread() -> None:
    with WorkerPool(processes=0) as workers:
        assert workers.run(_pid) == os.getpid()
        me = os.getpid()
        assert workers.run_all(_pid_and_value, [(1,), (2,)]) == [(me, 1), (me, 2)]


def _pid_and_value(value: int) -> tuple[int, int]:
    time.sleep(0.2)  # long enough that one worker cannot take every call
    return os.getpid(), value


def _collector_enabled() -> tuple[bool, int]:
    return gc.isenabled(), os.getpid()


def _fail_on(value: int) -> int:
    if value == 2:
        raise ValueError(f"batch {value}: bad assignee")
    return value


@needs_fork
def test_run_all_spreads_calls_over_the_workers_and_keeps_their_order() -> None:
    with WorkerPool(processes=2) as workers:
        results = workers.run_all(_pid_and_value, [(n,) for n in range(4)])
    assert [value for _, value in results] == [0, 1, 2, 3]
    pids = {pid for pid, _ in results}
    assert len(pids) == 2 and os.getpid() not in pids


@needs_fork
def test_run_all_lets_every_call_end_then_raises_the_first_failure() -> None:
    with WorkerPool(processes=2) as workers:
        with pytest.raises(ValueError, match="batch 2: bad assignee"):
            workers.run_all(_fail_on, [(1,), (2,), (3,)])
        assert workers.run(_pid) != os.getpid()  # the pool is intact


@needs_fork
def test_a_worker_call_runs_without_the_cyclic_collector() -> None:
    with WorkerPool(processes=1) as workers:
        enabled, pid = workers.run(_collector_enabled)
    assert pid != os.getpid()
    assert enabled is False


def test_the_collector_is_back_on_after_a_worker_call_even_a_failed_one() -> None:
    # _call_in_worker is what a worker runs each call through; here it runs in the test.
    assert gc.isenabled()
    assert _call_in_worker(gc.isenabled, (), {}) is False
    assert gc.isenabled()
    with pytest.raises(ValueError, match="batch 2"):
        _call_in_worker(_fail_on, (2,), {})
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("value", "cpus", "expected"),
    [
        ("auto", 2, 2),
        ("", 16, 4),
        ("auto", 1, 0),
        ("0", 8, 0),
        ("3", 1, 3),
        ("9", 16, 4),
        ("many", 8, 0),
    ],
)
def test_flow_processes_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, cpus: int, expected: int
) -> None:
    monkeypatch.setenv(PROCESSES_ENV, value)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert flow_processes() == expected


_HOLDS_WORKERS = """
import sys, time
from tasks.worker_processes import WorkerPool
with WorkerPool(processes=2) as workers:
    print("ready", flush=True)
    workers.run(time.sleep, 120)
"""


@needs_fork
def test_a_killed_run_leaves_no_worker_behind() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _HOLDS_WORKERS],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        workers = live_children(parent.pid)
        assert len(workers) == 2
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(is_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if is_alive(pid)]
