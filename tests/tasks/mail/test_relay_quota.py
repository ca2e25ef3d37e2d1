"""The relay's sending limits, shared by concurrent runs through the database, against a real
aiosmtpd sink, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from crm_db.enums import OutboxStatus
from tasks.mail.deliver import QUOTA_STOP, DeliveryReport, deliver_due
from tests.support.outbox_data import delivery_settings, outbox_rows, queue_customers
from tests.support.smtp_servers import FaultySink, running_server

PER_SECOND = 8
MESSAGES = 32
# A clock hour, fixed: the runs of one test stay inside it (time passed in, not frozen).
HOUR = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_two_concurrent_runs_together_stay_within_the_per_second_limit(engine: Engine) -> None:
    now = datetime.now(UTC)
    queue_customers(engine, MESSAGES, now=now)
    reports: list[DeliveryReport] = []
    errors: list[BaseException] = []
    with running_server(FaultySink(keep_data=False)) as server:
        settings = delivery_settings(
            port=server.port,
            smtp_concurrency=3,
            outbox_batch_size=10,
            smtp_max_per_second=PER_SECOND,
        )

        def deliver() -> None:
            try:
                reports.append(deliver_due(engine, settings, now=datetime.now(UTC)))
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)

        # The sink stamps acceptances with time.monotonic(); the runs count windows in UTC.
        offset = time.time() - time.monotonic()
        started = time.monotonic()
        runs = [threading.Thread(target=deliver) for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=120)
        elapsed = time.monotonic() - started
        received = list(server.sink.received)
    assert errors == []
    assert len(reports) == 2 and all(r.sent > 0 for r in reports), reports
    assert sum(r.sent for r in reports) == MESSAGES
    assert {row.status for row in outbox_rows(engine)} == {OutboxStatus.SENT}
    assert len({r.message_id for r in received}) == len(received) == MESSAGES
    per_second = Counter(math.floor(r.accepted_at + offset) for r in received)
    assert max(per_second.values()) <= PER_SECOND, sorted(per_second.items())
    # The limit really bound: unlimited, 32 messages take well under a second here. Four full
    # windows span a little over three seconds, less the part of the first already gone.
    assert len(per_second) >= MESSAGES // PER_SECOND
    assert elapsed >= MESSAGES / PER_SECOND - 2


def test_a_used_up_hour_leaves_the_rest_pending_and_the_next_hour_sends_it(
    engine: Engine,
) -> None:
    queue_customers(engine, 12, now=HOUR)
    with running_server(FaultySink(keep_data=False)) as server:
        settings = delivery_settings(port=server.port, smtp_concurrency=2, smtp_max_per_hour=5)

        first = deliver_due(engine, settings, now=HOUR)
        assert first.sent == 5 and first.failed == 0
        assert first.deferred == first.claimed - 5 and first.released == 0
        assert first.stopped is not None and first.stopped.startswith(QUOTA_STOP)
        assert "5 per hour" in first.stopped and "11:00:00 UTC" in first.stopped
        rows = outbox_rows(engine)
        assert Counter(r.status for r in rows) == {OutboxStatus.SENT: 5, OutboxStatus.PENDING: 7}
        # Deferred, never attempted: no attempt counted, no retry delay, no lease held.
        waiting = [r for r in rows if r.status == OutboxStatus.PENDING]
        assert all(r.attempts == 0 and r.lease_owner is None for r in waiting)
        assert all(r.next_attempt_at <= HOUR for r in waiting)

        # Later in the same hour: nothing more goes out.
        again = deliver_due(engine, settings, now=HOUR + timedelta(minutes=30))
        assert again.sent == 0 and again.stopped is not None
        assert len(server.sink.received) == 5

        # The next hour sends the next five, the one after the last two.
        assert deliver_due(engine, settings, now=HOUR + timedelta(hours=1)).sent == 5
        last = deliver_due(engine, settings, now=HOUR + timedelta(hours=2))
        assert (last.sent, last.deferred, last.stopped) == (2, 0, None)
        received = server.sink.message_ids()
    assert {row.status for row in outbox_rows(engine)} == {OutboxStatus.SENT}
    assert sorted(received) == sorted(row.message_id for row in outbox_rows(engine))
