"""Building messages in the stdlib process pool (``tasks.mail.build``): the same bytes as in
the delivering process, and a hung, crashed or orphaned worker never stalls or outlives
delivery. Waits are on events (futures, pipes, pidfds) with timeouts, not sleeps."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from crm_core.paths import PROJECT_ROOT
from tasks.mail.build import BuildExecutor, BuildJob, BuildLost, build_one
from tasks.mail.deliver import deliver_due
from tasks.mail.kinds import get_kind
from tasks.mail.message import Attachment
from tests.support.build_faults import DyingContext, HangingContext
from tests.support.outbox_data import delivery_settings, outbox_rows, queue_customers
from tests.support.processes import is_alive, live_children
from tests.support.smtp_servers import FaultySink, running_server

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
BASE_URL = "https://crm.example.test"
SENDER = "CRM Flows <crm@example.test>"
KEY = b"k" * 32


def _job(i: int, context: dict[str, object] | None = None) -> BuildJob:
    return BuildJob(
        "revisit_care",
        "zh-CN",
        context if context is not None else dict(get_kind("revisit_care").sample_context),
        f"<{i:032x}@example.test>",
        f"c{i}@example.test",
        f"客户 {i}",
        i,
        i,
        NOW,
        (Attachment("chart.png", "image/png", b"\x89PNG" * 50, "chart@crm-flows"),),
    )


def _pool(**kwargs: float) -> BuildExecutor:
    return BuildExecutor(1, company="CRM Flows", default_base_url=BASE_URL, **kwargs)


async def _build(pool: BuildExecutor, jobs: list[BuildJob]) -> list[bytes | str]:
    return await pool.submit(jobs, sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY)


def _workers() -> list[int]:
    """This process's spawned pool workers (not the multiprocessing resource tracker, which
    lives as long as the process that started it)."""
    found = []
    for pid in live_children(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"spawn_main" in cmdline.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def _wait_exit(pid: int, timeout: float) -> bool:
    """Whether ``pid`` exits within ``timeout`` (a pidfd becomes readable when it does)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable) or not is_alive(pid)
    finally:
        os.close(fd)


def test_the_pool_builds_the_same_bytes_as_the_delivering_process() -> None:
    jobs = [_job(i) for i in range(5)]
    expected = [build_one(j, sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY) for j in jobs]
    assert all(isinstance(b, bytes) for b in expected)

    async def run() -> list[bytes | str]:
        pool = _pool()
        try:
            return await _build(pool, jobs)
        finally:
            pool.shutdown()

    assert asyncio.run(run()) == expected


def test_a_bad_row_fails_alone_in_the_pool() -> None:
    async def run() -> list[bytes | str]:
        pool = _pool()
        try:
            return await _build(pool, [_job(1), _job(2, {"nothing": "useful"})])
        finally:
            pool.shutdown()

    good, bad = asyncio.run(run())
    assert isinstance(good, bytes)
    assert isinstance(bad, str) and bad.startswith("render: TemplateContextError")


@pytest.mark.parametrize(
    ("context", "within_s"), [(DyingContext(), 20.0), (HangingContext(), 25.0)]
)
def test_a_crashed_or_hung_worker_loses_its_chunk_and_nothing_waits_forever(
    context: dict[str, object], within_s: float
) -> None:
    async def run() -> tuple[float, bool, list[int]]:
        pool = _pool(hang_s=2.0, chunk_timeout_s=60.0)
        while not pool.ready:
            await asyncio.sleep(0.01)
        children = _workers()
        assert children
        started = time.monotonic()
        with pytest.raises(BuildLost):
            await _build(pool, [_job(1), _job(2, context)])
        took = time.monotonic() - started
        # Lost for good: the caller builds in-process from now on, and a submit says so.
        with pytest.raises(BuildLost):
            pool.submit([_job(3)], sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY)
        pool.shutdown(wait=False)
        return took, pool.alive, children

    took, alive, children = asyncio.run(run())
    assert took < within_s and not alive
    assert all(_wait_exit(pid, 30.0) for pid in children), "a worker outlived its pool"


def test_the_parents_timeout_releases_a_chunk_even_if_the_worker_never_ends() -> None:
    async def run() -> float:
        # The worker's own watchdog is set far out: only the parent's timeout can fire.
        pool = _pool(hang_s=120.0, chunk_timeout_s=3.0)
        started = time.monotonic()
        try:
            with pytest.raises(BuildLost):
                await _build(pool, [_job(1, HangingContext())])
            return time.monotonic() - started
        finally:
            for pid in _workers():
                os.kill(pid, signal.SIGKILL)  # this test's stuck worker: end it now
            pool.shutdown(wait=False)

    assert asyncio.run(run()) < 30.0


def test_workers_exit_when_the_delivering_process_is_killed() -> None:
    read_fd, write_fd = os.pipe()
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.support.build_faults", str(write_fd)],
        cwd=PROJECT_ROOT,
        pass_fds=(write_fd,),
    )
    os.close(write_fd)
    try:
        readable, _, _ = select.select([read_fd], [], [], 60.0)
        assert readable, "the pool did not start"
        pids = [int(p) for p in os.read(read_fd, 4096).split()]
        assert len(pids) >= 2  # two workers (and the resource tracker)
        assert all(is_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert all(_wait_exit(pid, 15.0) for pid in pids), [p for p in pids if is_alive(p)]
    finally:
        os.close(read_fd)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_delivery_through_the_pool_sends_every_row_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_BUILD_WORKERS", "1")
    ids = queue_customers(engine, 450, now=NOW)
    with running_server(FaultySink(keep_data=False)) as server:
        report = deliver_due(
            engine, delivery_settings(port=server.port, outbox_batch_size=300), now=NOW
        )
        assert (report.claimed, report.sent, report.released) == (450, 450, 0)
        assert sorted(server.sink.message_ids()) == sorted(
            r.message_id for r in outbox_rows(engine)
        )
    assert len(ids) == 450 and _workers() == []  # the pool's workers are gone with the run
