"""Worker processes for the CPU-bound steps of one flow run (planning a customer id range,
building a batch of digests).

Those steps spend their time in per-row Python and, on the embedded database, in SQLite (an
in-process library); both hold the GIL, so the flow's threads barely overlap them. Processes do.

Workers are forked (Linux): a forked worker starts in milliseconds with every module imported,
where a spawned interpreter spends about 2 s importing SQLAlchemy and our modules before doing any
work - longer than a range takes. The flow's pooled connections are closed before the fork, so
a worker inherits none (SQLite's per-process lock bookkeeping must not be shared with a child);
it opens its own (``engine_for``) and keeps them until it exits. Worker code does not log
through Prefect (the run's log shipper is a thread of the parent); it returns counts.

Workers are forked when the flow enters ``with WorkerPool()``, and die with the thread that
forked them (Linux ``PR_SET_PDEATHSIG``), so a flow run that is killed leaves no process
behind; a range a dying worker was writing rolls back and is planned again by the task's retry
(in the flow's threads) or the next run (its inserts skip what exists).

Delivery's message builders (tasks/mail/build.py) are spawned instead, on purpose: they serve
an asyncio loop for the whole run and are cheap to spawn once; these run a few seconds-long
synchronous calls, where a 2 s spawn would cost more than it saves.

``CRM_FLOW_PROCESSES`` (environment, read per run): ``auto`` (default) = one per CPU, and none
on a one-CPU machine; ``0`` = none; ``N``; never more than 4. Without processes - and on macOS and
Windows, where fork is not safe in a process with threads - the steps run in the calling
thread: same code, same results.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import gc
import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine

from crm_core.process_count import process_count
from crm_db.session import close_shared_connections, make_engine, shared_engine

P = ParamSpec("P")
R = TypeVar("R")


FORK_IS_SAFE = sys.platform.startswith("linux")
PROCESSES_ENV = "CRM_FLOW_PROCESSES"
# At most this many: the revisits flow runs this many tasks at a time (its ThreadPoolTaskRunner),
# so more workers would only sit idle.
MAX_PROCESSES = 4
_PR_SET_PDEATHSIG = 1
_IN_WORKER = False  # set by _start_worker in the forked processes


class WorkerError(RuntimeError):
    """An exception raised in a worker that could not travel back as itself (its class cannot
    be rebuilt from a pickle): its class name, message and the worker's traceback."""


def flow_processes() -> int:
    """Worker processes a flow run may use (``CRM_FLOW_PROCESSES``; see the module docstring)."""
    cpus = os.cpu_count() or 1
    auto = min(cpus, MAX_PROCESSES) if cpus >= 2 else 0
    return process_count(PROCESSES_ENV, auto=auto, maximum=MAX_PROCESSES)


def _start_worker() -> None:
    """Worker start-up: be killed when the forking thread ends (the run was killed)."""
    global _IN_WORKER
    _IN_WORKER = True
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    # Everything inherited from the flow's process (Prefect, SQLAlchemy, ~200 MB) is alive for
    # the worker's life: exempt it from the collector, whose full passes would otherwise walk it
    # (and copy its pages). Measured: 10 % less CPU for a million customers' planning.
    gc.freeze()


def _call_in_worker(fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """Runs ``fn`` in the worker. An exception that would not unpickle in the parent (one whose
    ``__init__`` takes extra arguments) would break the whole pool there - every range in flight
    failing with BrokenProcessPool - so it comes back as a WorkerError carrying its text.

    The collector is off for the call: a range allocates a few hundred thousand short-lived
    tuples and no reference cycles worth collecting, and the passes those allocations trigger
    cost ~0.1 s of a 0.25-million-customer range's ~0.25 s of Python (measured on PostgreSQL).
    It is back on between calls, so whatever a call left in cycles is collected then."""
    gc.disable()
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            detail = "".join(traceback.format_exception(exc))
            raise WorkerError(f"{type(exc).__name__}: {exc}\n(in worker)\n{detail}") from None
        raise
    finally:
        gc.enable()


class WorkerPool:
    """``processes`` forked workers for one flow run (a context manager); ``run`` calls a
    module-level function in one of them and returns its result. With 0 processes, or where
    fork is unsafe, ``run`` calls it in the calling thread.

    The workers are forked once, on entering the block. If one dies, the call that was using it
    fails (BrokenProcessPool) and the pool runs every later call - a task's retry included - in
    the calling thread: forking again from a task thread could copy open connections and held
    locks into the child. After the block, ``run`` refuses."""

    def __init__(self, processes: int | None = None) -> None:
        wanted = flow_processes() if processes is None else processes
        self.processes = wanted if FORK_IS_SAFE else 0
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> WorkerPool:
        if self.processes:
            # Fork now, from the thread entering the block (the flow's): a worker dies with the
            # thread that forked it, and the flow's thread outlives every task using the pool.
            # No database connection may be open across the fork (see close_shared_connections).
            close_shared_connections()
            self._executor = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
            )
            # With "fork" the executor starts all its processes on the first submit.
            self._executor.submit(os.getpid).result()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` in a worker process (arguments and result are pickled)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the flow's worker pool is closed (the run is ending)")
            executor = self._executor
        if executor is None:  # no processes, or a worker died earlier in this run
            return fn(*args, **kwargs)
        try:
            return executor.submit(_call_in_worker, fn, args, kwargs).result()
        except BrokenProcessPool:
            # A worker died (killed, out of memory): this call fails, loudly; the rest of the
            # run, this task's retry included, works in the flow's threads.
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
            raise

    def run_all(self, fn: Callable[..., R], calls: Sequence[tuple[Any, ...]]) -> list[R]:
        """``fn(*args)`` for every ``args`` in ``calls``, spread over the workers; the results in
        the order of ``calls``. Every call ends (completed or failed) before the first failure
        is raised. Without processes: one after another in the calling thread."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the flow's worker pool is closed (the run is ending)")
            executor = self._executor
        if executor is None:
            return [fn(*args) for args in calls]
        futures = [executor.submit(_call_in_worker, fn, args, {}) for args in calls]
        concurrent.futures.wait(futures)
        if any(isinstance(f.exception(), BrokenProcessPool) for f in futures):
            with self._lock:
                if self._executor is executor:
                    self._executor = None
            executor.shutdown(wait=False, cancel_futures=True)
        return [f.result() for f in futures]

    def __repr__(self) -> str:  # shown by Prefect among a task's inputs
        return f"WorkerPool(processes={self.processes})"


_WORKER_ENGINES: dict[str, Engine] = {}
# Connections a worker keeps between calls (a range opens two: the read, then the write).
WORKER_POOL_SIZE = 2


def engine_for(url: str) -> Engine:
    """The engine a step should use for ``url``: in the flow's own process the shared engine;
    in a worker process one of its own, whose connections live as long as the worker (a new
    PostgreSQL connection costs its server a process and cold catalog caches, tens of ms of
    CPU; a new SQLite one rebuilds the WAL index) and are closed when it exits."""
    if not _IN_WORKER:
        return shared_engine(url)
    engine = _WORKER_ENGINES.get(url)
    if engine is None:
        engine = _WORKER_ENGINES[url] = make_engine(url, pool_size=WORKER_POOL_SIZE)
        # Run when the pool shuts the worker down (not when it is killed: then the database
        # sees the connection drop, and rolls back whatever it was doing).
        multiprocessing.util.Finalize(None, engine.dispose, exitpriority=0)
    return engine


__all__ = [
    "FORK_IS_SAFE",
    "MAX_PROCESSES",
    "PROCESSES_ENV",
    "WorkerError",
    "WorkerPool",
    "engine_for",
    "flow_processes",
]
