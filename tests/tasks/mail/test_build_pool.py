"""Build worker processes: same bytes as building in-process, no row lost when a worker dies,
no process left behind (after a run, or when the delivering process is killed)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from crm_core.paths import PROJECT_ROOT
from crm_core.signing import verify
from crm_db.enums import OutboxStatus
from crm_db.session import session_scope
from tasks.mail import deliver
from tasks.mail.build_pool import BuildJob, BuildPool, WorkerGone, build_one, build_workers
from tests.support.outbox_data import (
    care_context,
    care_message,
    delivery_settings,
    digest_context,
    make_customer,
    outbox_rows,
    queue,
    queue_customers,
)
from tests.support.smtp_servers import FaultySink, SmtpServer, running_server

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SENDER = "CRM Flows <crm@example.test>"
BASE_URL = "https://crm.example.test"
KEY = b"k" * 32
BOUNDARY = re.compile(rb"==_[0-9a-f]{32}")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_server(FaultySink()) as server:
        server.sink.keep_data = False
        yield server


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited and been reaped (no zombie either)."""
    return not Path(f"/proc/{pid}").exists()


def _jobs() -> list[BuildJob]:
    plain = care_context()
    care = {**plain, "unsubscribe_url": f"{BASE_URL}/u/token"}
    broken = dict(care)
    del broken["manager_name"]
    return [
        # The unsubscribe link is signed in the worker, for the customer named here.
        BuildJob("revisit_care", "zh-CN", plain, "<a1@example.test>", "a@example.test", "王伟", 42),
        # This one also gets the feedback link, naming its outbox row.
        BuildJob(
            "revisit_care", "en", plain, "<a2@example.test>", "b@example.test", "Li Na", 43, 9
        ),
        BuildJob(
            "revisit_digest",
            "zh-CN",
            digest_context(),
            "<a3@example.test>",
            "c@example.test",
            "",
            None,
        ),
        BuildJob("revisit_care", "en", broken, "<a4@example.test>", "d@example.test", "X", None),
        BuildJob("revisit_care", "en", care, "<a5@example.test>", "bad address", "X", None),
    ]


def test_workers_build_the_same_bytes_and_errors_as_in_process() -> None:
    jobs = _jobs()
    local = [build_one(job, sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY) for job in jobs]

    async def through_pool() -> tuple[list[bytes | str], list[int]]:
        pool = await BuildPool.start(1, company="CRM Flows", default_base_url=BASE_URL)
        try:
            for _ in range(200):  # the worker imports and says "ready" (a second or so)
                if pool.any_ready:
                    break
                await asyncio.sleep(0.05)
            future = pool.submit(jobs, sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY)
            assert future is not None
            return await future, pool.pids
        finally:
            await pool.stop()

    remote, pids = asyncio.run(through_pool())

    assert [type(r) for r in remote] == [bytes, bytes, bytes, str, str]
    for mine, theirs in zip(local, remote, strict=True):
        if isinstance(mine, bytes):
            assert isinstance(theirs, bytes)
            assert BOUNDARY.sub(b"B", mine) == BOUNDARY.sub(b"B", theirs)
        else:
            assert mine == theirs
    assert b"List-Unsubscribe: <https://crm.example.test/u/" in remote[0]
    # Without an outbox row the care email asks for a reply; with one it links to /f/.
    without, with_link = remote[0], remote[1]
    assert isinstance(without, bytes) and isinstance(with_link, bytes)
    plain = message_from_bytes(without, policy=policy.default).get_body(("plain",))
    assert plain is not None
    assert "/f/" not in plain.get_content() and "直接回复本邮件" in plain.get_content()
    body = message_from_bytes(with_link, policy=policy.default).get_body(("plain",))
    assert body is not None
    feedback = re.search(r"https://crm\.example\.test/f/([A-Za-z0-9_.-]+)", body.get_content())
    assert feedback is not None
    assert verify(KEY, "care_feedback", feedback[1], NOW) == {"message": 9}
    assert "manager_name" in str(remote[3]) and str(remote[4]).startswith("render: Invalid")
    assert pids and all(_gone(pid) for pid in pids)


def test_worker_count_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_BUILD_WORKERS", "0")
    assert build_workers() == 0
    monkeypatch.setenv("CRM_BUILD_WORKERS", "2")
    assert build_workers() == 2
    monkeypatch.setenv("CRM_BUILD_WORKERS", "lots")
    assert build_workers() == 0
    monkeypatch.setenv("CRM_BUILD_WORKERS", "auto")
    assert build_workers() == (1 if (os.cpu_count() or 1) >= 2 else 0)


class _PoolSpy:
    """Starts the real pool, waits until it is ready (so the test knows chunks go through it)
    and records its pids and the chunks it took; ``kill_after`` SIGKILLs the workers right
    after that many chunks were handed over."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        kill_after: int | None = None,
        kill_signal: signal.Signals = signal.SIGKILL,
    ) -> None:
        self.pids: list[int] = []
        self.chunks = 0
        self.kill_after = kill_after
        original_start = BuildPool.start.__func__  # type: ignore[attr-defined]
        original_submit = BuildPool.submit
        spy = self

        async def start(cls: type[BuildPool], /, count: int, **kwargs: Any) -> BuildPool:
            pool: BuildPool = await original_start(cls, count, **kwargs)
            for _ in range(400):
                if pool.any_ready:
                    break
                await asyncio.sleep(0.05)
            spy.pids.extend(pool.pids)
            return pool

        def submit(pool: BuildPool, jobs: list[BuildJob], **kwargs: Any) -> Any:
            future = original_submit(pool, jobs, **kwargs)
            if future is not None:
                spy.chunks += 1
                if spy.chunks == spy.kill_after:
                    for pid in pool.pids:
                        os.kill(pid, kill_signal)
            return future

        monkeypatch.setattr(BuildPool, "start", classmethod(start))
        monkeypatch.setattr(BuildPool, "submit", submit)
        monkeypatch.setattr(deliver, "MIN_ROWS", 1)
        monkeypatch.setattr(deliver, "CHUNK", 10)
        monkeypatch.setenv("CRM_BUILD_WORKERS", "1")


def test_delivery_through_a_worker_sends_each_row_once_and_leaves_no_process(
    engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _PoolSpy(monkeypatch)
    queue_customers(engine, 90, now=NOW)
    settings = delivery_settings(port=smtp.port, outbox_batch_size=30, smtp_concurrency=3)

    report = deliver.deliver_due(engine, settings, now=NOW)

    assert (report.claimed, report.sent, report.released) == (90, 90, 0)
    assert spy.pids and spy.chunks >= 3  # batches after the first went through the worker
    assert len(smtp.sink.message_ids()) == 90 and smtp.sink.duplicates() == 0
    assert {r.message_id for r in outbox_rows(engine)} == set(smtp.sink.message_ids())
    assert all(_gone(pid) for pid in spy.pids)


def test_a_killed_worker_loses_no_row_and_its_rows_are_sent_in_process(
    engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _PoolSpy(monkeypatch, kill_after=2)
    queue_customers(engine, 90, now=NOW)
    settings = delivery_settings(port=smtp.port, outbox_batch_size=30, smtp_concurrency=3)

    report = deliver.deliver_due(engine, settings, now=NOW)

    # The chunks the dead worker held were released unsent (attempt given back), claimed
    # again by the same run and built in-process like everything after them.
    assert report.released >= 1 and report.claimed == 90 + report.released
    assert report.sent == 90
    rows = outbox_rows(engine)
    assert {r.status for r in rows} == {OutboxStatus.SENT}
    assert sorted(r.attempts for r in rows).count(1) == 90  # no attempt counted twice
    assert len(smtp.sink.message_ids()) == 90 and smtp.sink.duplicates() == 0
    assert {r.message_id for r in rows} == set(smtp.sink.message_ids())
    assert all(_gone(pid) for pid in spy.pids)


def test_killing_the_pool_ends_it_at_once_and_fails_its_pending_chunks() -> None:
    """A hung worker is killed from the delivery loop; the pool must count as gone at once -
    not when its end-of-file is read later - or a caller waiting for a free slot waits for a
    wake-up that never comes (an intermittent hang of the hung-worker test below)."""

    async def scenario() -> list[int]:
        pool = await BuildPool.start(1, company="CRM Flows", default_base_url=BASE_URL)
        try:
            for _ in range(200):
                if pool.any_ready:
                    break
                await asyncio.sleep(0.05)
            os.kill(pool.pids[0], signal.SIGSTOP)  # alive, never answers
            future = pool.submit(_jobs()[:1], sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY)
            assert future is not None and pool.alive

            pool.kill()

            assert not pool.alive and not pool.any_ready  # no await in between: at once
            with pytest.raises(WorkerGone):
                await future
            assert pool.submit(_jobs(), sender=SENDER, base_url=BASE_URL, date=NOW, key=KEY) is None
        finally:
            await pool.stop()
        return pool.pids

    pids = asyncio.run(scenario())
    assert pids and all(_gone(pid) for pid in pids)


_HOLDER = """
import asyncio, sys
from tasks.mail.build_pool import BuildPool

async def main():
    pool = await BuildPool.start(1, company="CRM Flows", default_base_url="https://x.test")
    print(pool.pids[0], flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def test_a_killed_delivering_process_takes_its_worker_with_it() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, cwd=PROJECT_ROOT, text=True
    )
    try:
        assert holder.stdout is not None
        worker_pid = int(holder.stdout.readline())
        assert not _gone(worker_pid)
        holder.kill()  # SIGKILL: no clean-up code runs in the parent
        holder.wait(10)
        deadline = time.monotonic() + 15
        # The orphan is re-parented (to init here) and reaped once it exits on EOF.
        while time.monotonic() < deadline and _alive(worker_pid):
            time.sleep(0.05)
        assert not _alive(worker_pid)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper does not count: it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_workers_also_run_when_called_from_inside_an_event_loop(
    sqlite_engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An async caller: deliver_due runs its own loop in a helper thread, and the workers'
    # child processes are watched from there.
    spy = _PoolSpy(monkeypatch)
    queue_customers(sqlite_engine, 60, now=NOW)
    settings = delivery_settings(port=smtp.port, outbox_batch_size=20, smtp_concurrency=2)

    async def caller() -> deliver.DeliveryReport:
        return deliver.deliver_due(sqlite_engine, settings, now=NOW)

    report = asyncio.run(caller())

    assert (report.sent, report.released) == (60, 0)
    assert spy.pids and spy.chunks >= 2
    assert len(smtp.sink.message_ids()) == 60 and smtp.sink.duplicates() == 0
    assert all(_gone(pid) for pid in spy.pids)


def test_a_hung_worker_is_ended_and_its_rows_released_then_sent(
    sqlite_engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _PoolSpy(monkeypatch, kill_after=2, kill_signal=signal.SIGSTOP)  # alive, never answers
    monkeypatch.setattr(deliver, "BUILD_TIMEOUT_S", 0.5)
    queue_customers(sqlite_engine, 60, now=NOW)
    settings = delivery_settings(port=smtp.port, outbox_batch_size=20, smtp_concurrency=2)

    report = deliver.deliver_due(sqlite_engine, settings, now=NOW)

    assert report.released >= 1 and report.sent == 60
    assert {r.status for r in outbox_rows(sqlite_engine)} == {OutboxStatus.SENT}
    assert len(smtp.sink.message_ids()) == 60 and smtp.sink.duplicates() == 0
    assert all(_gone(pid) for pid in spy.pids)


def test_chunks_that_fail_to_build_entirely_do_not_stall_the_run(
    sqlite_engine: Engine, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows failed in the worker never reach the send queue; the producer must still be woken.
    _PoolSpy(monkeypatch)
    broken = care_context()
    del broken["manager_name"]
    with session_scope(sqlite_engine) as session:
        messages = [care_message(make_customer(session), context=broken) for _ in range(60)]
    queue(sqlite_engine, messages, now=NOW)
    settings = delivery_settings(port=smtp.port, outbox_batch_size=20, smtp_concurrency=2)

    report = deliver.deliver_due(sqlite_engine, settings, now=NOW)

    assert (report.claimed, report.failed, report.sent) == (60, 60, 0)
    assert len(smtp.sink.message_ids()) == 0
