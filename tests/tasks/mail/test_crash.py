"""Crash safety: delivering processes killed with SIGKILL at random points, then restarted.

The sink records every Message-ID it accepts. Whatever the kill hits (a claim transaction, a
render, a half-sent DATA, the window between the server's 250 and the durable mark), restarting
must lose nothing, and the only duplicates allowed are messages the sink accepted at most
50 ms (the README's bound) before the kill of the process that sent them, not counting the time
the kernel kept that process waiting for a CPU, and no more than one per SMTP connection per
kill. Select it alone with ``-m crash``.

Also: two processes delivering from the same outbox at the same time send nothing twice.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from crm_core.paths import PROJECT_ROOT
from crm_db.enums import OutboxStatus
from tests.support.outbox_data import outbox_rows, queue_customers
from tests.support.smtp_servers import FaultySink, SmtpServer, running_server

NOW = datetime.now(UTC)
MESSAGES = 2000
KILLS = 30
CONNECTIONS = 4
# The README's bound: an accepted message is durably marked sent within this long of the
# server's 250, counting the time the delivering process's threads could run (_Starvation).
MARK_BOUND_S = 0.050


class _Starvation:
    """How long the kernel kept a process's threads waiting for a CPU: their run-queue delay
    from ``/proc/PID/task/TID/schedstat``, summed over the threads, sampled every 2 ms in a
    thread until ``stop``. On a shared machine (load 8-14 on 2 cores while this was written), a
    thread that is ready to run can wait 100-500 ms for a CPU; no code of ours can mark a
    message while the thread on its path waits: the event loop that reads the 250 and, on
    PostgreSQL, the settlement thread that commits its mark (``deliver._Settler``). That time
    is taken out of the gap before it is held to the bound (and reported). Summing every
    thread's wait can count more than the mark's path waited (two threads waiting at once);
    the raw gap is reported beside it. Where schedstat is missing the waits count as 0: the
    bound is then held as it is."""

    def __init__(self, pid: int) -> None:
        self.tasks = Path(f"/proc/{pid}/task")
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> dict[str, float] | None:
        waits: dict[str, float] = {}
        try:
            threads = list(self.tasks.iterdir())
        except OSError:
            return None
        for task in threads:
            try:
                waits[task.name] = int((task / "schedstat").read_text().split()[1]) / 1e9
            except (OSError, IndexError, ValueError):
                continue  # a thread that just ended
        return waits or None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.002)

    def sample(self) -> None:
        waited = self._read()
        if waited is not None:
            self.samples.append((time.monotonic(), waited))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        """Run-queue wait of the threads from the last sample at or before ``start`` to the
        last at or before ``end`` (a thread started in between counts from 0; 0 without
        samples)."""
        times = [t for t, _ in self.samples]
        i = bisect.bisect_right(times, start) - 1
        j = bisect.bisect_right(times, end) - 1
        if i < 0 or j < 0 or j < i:
            return 0.0
        first, last = self.samples[i][1], self.samples[j][1]
        return sum(max(0.0, waited - first.get(tid, 0.0)) for tid, waited in last.items())


def _engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _start_worker(
    engine: Engine, server: SmtpServer, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.delivery_worker",
                "--url",
                _engine_url(engine),
                "--port",
                str(server.port),
                *extra,
            ],
            cwd=PROJECT_ROOT,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _assert_all_sent_once_or_nearly(engine: Engine, sink: FaultySink, max_duplicates: int) -> int:
    rows = outbox_rows(engine)
    assert len(rows) == MESSAGES
    statuses = Counter(row.status for row in rows)
    assert statuses == {OutboxStatus.SENT: MESSAGES}, statuses
    received = Counter(sink.message_ids())
    lost = [row.id for row in rows if row.message_id not in received]
    assert lost == []
    assert set(received) == {row.message_id for row in rows}  # nothing foreign either
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= max_duplicates
    return duplicates


def _duplicates_per_kill(
    sink: FaultySink, starts: list[float], kill_times: list[float], starved: list[_Starvation]
) -> tuple[list[int], list[float], list[float]]:
    """Attribute each resend to the kill that caused it: a message accepted k times was
    accepted-but-unmarked k - 1 times, each by a process killed before its mark was durable.
    The process is the one whose connection carried the acceptance (processes run one after
    another: ``starts[i]`` to ``kill_times[i]``). Returns the duplicates per kill and, for each
    duplicate, how long before its process's kill the server accepted it (negative: the server
    accepted it after the kill, from data the dead process had already sent), and that gap
    less the time the process waited for a CPU in it."""
    times: dict[str, list[tuple[float, float]]] = {}
    for item in sink.received:
        if item.message_id is not None:
            assert item.connected_at > 0, "an acceptance on a connection the sink did not see open"
            times.setdefault(item.message_id, []).append((item.accepted_at, item.connected_at))
    per_kill = [0] * len(kill_times)
    gaps: list[float] = []
    running: list[float] = []
    for message_id, accepted in times.items():
        for at, connected_at in sorted(accepted)[:-1]:
            worker = bisect.bisect_right(starts, connected_at) - 1
            assert 0 <= worker < len(kill_times), (
                f"{message_id} was accepted twice; the first time from a process never killed"
            )
            per_kill[worker] += 1
            gaps.append(kill_times[worker] - at)
            running.append(gaps[-1] - starved[worker].between(at, kill_times[worker]))
    return per_kill, gaps, running


@pytest.mark.crash
# 30 worker starts take ~12 s each at load 12 (imports): longer than the default 600 s.
@pytest.mark.timeout(1800)
def test_kill_minus_nine_at_random_points_loses_nothing(
    engine: Engine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    queue_customers(engine, MESSAGES, now=NOW)
    rng = random.Random(20260302)
    log = tmp_path / "workers.log"
    # A server that takes ~10 ms to accept each recipient keeps the run going through 30 kills,
    # while it still records each message the moment its data is complete.
    concurrency = ("--concurrency", str(CONNECTIONS))
    starts: list[float] = []
    kill_times: list[float] = []
    starved: list[_Starvation] = []
    with running_server(FaultySink(keep_data=False, rcpt_delay_s=0.01)) as server:
        deadline = time.monotonic() + 900
        while len(kill_times) < KILLS and time.monotonic() < deadline:
            sink = server.sink
            sink.connected.clear()
            sink.accepted.clear()
            starts.append(time.monotonic())
            worker = _start_worker(engine, server, log, *concurrency)
            starvation = _Starvation(worker.pid)
            # Wait for the first acceptance of this worker, then kill it a random moment later.
            assert sink.accepted.wait(timeout=60) or worker.poll() is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=rng.uniform(0.0, 0.3))  # early only if it finished
            if worker.poll() is not None:
                starts.pop()
                starvation.stop()
                break  # it finished the whole outbox before we could kill it
            starvation.sample()
            kill_times.append(time.monotonic())
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            starvation.stop()
            starved.append(starvation)
        kills = len(kill_times)
        assert kills >= KILLS, f"only {kills} kills before the deadline or the outbox drained"
        assert len(server.sink.received) < MESSAGES  # the kills really happened mid-batch

        starts.append(time.monotonic())
        final = _start_worker(engine, server, log, *concurrency)
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]

        duplicates = _assert_all_sent_once_or_nearly(
            engine, server.sink, max_duplicates=kills * CONNECTIONS
        )
        per_kill, gaps, running = _duplicates_per_kill(server.sink, starts, kill_times, starved)
    assert sum(per_kill) == duplicates
    longest_gap = max(gaps, default=0.0)
    longest_running = max(running, default=0.0)
    record_property("kills", kills)
    record_property("duplicates", duplicates)
    record_property("duplicates_per_kill_max", max(per_kill))
    record_property("longest_accept_to_kill_ms", round(longest_gap * 1000, 1))
    record_property("longest_accept_to_kill_running_ms", round(longest_running * 1000, 1))
    record_property("load_average", os.getloadavg()[0])
    # For the closing note: visible with ``-s`` (pytest shows the properties in its XML).
    sys.stderr.write(
        f"crash ({engine.dialect.name}): {kills} kills, {duplicates} duplicates, per kill "
        f"mean {duplicates / kills:.2f} max {max(per_kill)} ({CONNECTIONS} connections); "
        f"acceptance-to-kill of the duplicates: longest {longest_gap * 1000:.1f} ms, "
        f"{longest_running * 1000:.1f} ms without the waits for a CPU; all (ms) "
        f"{sorted(round(g * 1000, 1) for g in gaps)}; load average {os.getloadavg()[0]:.1f}\n"
    )
    # The README's bounds: each kill resends at most one message per connection, and only
    # messages the server accepted in the last MARK_BOUND_S before the kill.
    assert max(per_kill) <= CONNECTIONS, per_kill
    assert longest_running <= MARK_BOUND_S, sorted(zip(running, gaps, strict=True))


def test_two_processes_delivering_at_once_send_nothing_twice(
    engine: Engine, tmp_path: Path
) -> None:
    queue_customers(engine, MESSAGES, now=NOW)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    with running_server(FaultySink(keep_data=False)) as server:
        workers = [
            _start_worker(engine, server, log, "--batch", "40", "--concurrency", "3")
            for log in logs
        ]
        codes = [w.wait(timeout=120) for w in workers]
        assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
        _assert_all_sent_once_or_nearly(engine, server.sink, max_duplicates=0)
    # Both really delivered a share (each worker prints one JSON line of counts per run).
    sent = [
        sum(json.loads(line)["sent"] for line in log.read_text().splitlines() if line[:1] == "{")
        for log in logs
    ]
    assert sum(sent) == MESSAGES and min(sent) > 0, sent
