"""Crash safety: delivering processes killed with SIGKILL at random points, then restarted.

The sink records every Message-ID it accepts. Whatever the kill hits (a claim transaction, a
render, a half-sent DATA, the window between the server's 250 and the durable mark), restarting
must lose nothing, and the only duplicates allowed are messages accepted inside that window:
at most about one per kill.

Also: two processes delivering from the same outbox at the same time send nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from crm_core.paths import PROJECT_ROOT
from crm_db.enums import OutboxStatus
from tests.support.outbox_data import outbox_rows, queue_customers
from tests.support.smtp_servers import FaultySink, SmtpServer, running_server

NOW = datetime.now(UTC)
MESSAGES = 1000
KILLS = 20


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


def test_kill_minus_nine_at_random_points_loses_nothing(
    engine: Engine, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    queue_customers(engine, MESSAGES, now=NOW)
    rng = random.Random(20260302)
    log = tmp_path / "workers.log"
    # A server that takes ~20 ms to accept each recipient keeps the rate (and so the number of
    # messages inside the 250-to-mark window at any instant) well below one per kill, while it
    # still records each message the moment its data is complete.
    with running_server(FaultySink(keep_data=False, rcpt_delay_s=0.02)) as server:
        kills = 0
        deadline = time.monotonic() + 200
        while kills < KILLS and time.monotonic() < deadline:
            sink = server.sink
            sink.connected.clear()
            sink.accepted.clear()
            worker = _start_worker(engine, server, log)
            # Wait for what the worker is doing (events set by the SMTP server, with a timeout),
            # then kill it a random moment later: the offset is the chosen kill point.
            if rng.random() < 0.25:
                # Around start-up: claiming, building, the first connection and sends.
                assert sink.connected.wait(timeout=60), log.read_text()[-2000:]
                offset = rng.uniform(0.0, 0.3)
            else:
                # Mid-delivery: once it has had a message accepted.
                assert sink.accepted.wait(timeout=60) or worker.poll() is not None
                offset = rng.uniform(0.0, 0.3)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=offset)  # returns early only if it finished on its own
            if worker.poll() is not None:
                break  # it finished the whole outbox before we could kill it
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
        assert kills >= KILLS, f"the outbox drained after {kills} kills; make the test slower"
        assert len(server.sink.received) < MESSAGES  # the kills really happened mid-batch

        final = _start_worker(engine, server, log)
        assert final.wait(timeout=120) == 0, log.read_text()[-3000:]

        duplicates = _assert_all_sent_once_or_nearly(engine, server.sink, max_duplicates=kills)
    record_property("kills", kills)
    record_property("duplicates", duplicates)


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
