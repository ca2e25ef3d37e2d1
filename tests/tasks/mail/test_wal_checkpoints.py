"""SQLite: the sender checkpoints the WAL itself, between sends, never inside a mark's commit.

SQLite's automatic checkpoint runs in the commit that crosses its threshold and took 69 ms on a
quiet machine (249 ms under load) for a mark: every 250 read meanwhile waited that long. Here a
sink that takes 3 ms over each DATA keeps transactions in flight most of the time, and the test
records when each checkpoint ran (engine events) and when each message was accepted (the sink's
ledger, same monotonic clock): no acceptance may fall inside a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event

from crm_db.enums import OutboxStatus
from crm_db.session import SQLITE_WAL_CHECKPOINT_PAGES
from tasks.mail import deliver
from tests.support.outbox_data import delivery_settings, outbox_rows, queue_customers
from tests.support.smtp_servers import FaultySink, SmtpServer, running_server

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def slow_sink() -> Iterator[SmtpServer]:
    with running_server(FaultySink(keep_data=False, data_delay_s=0.003)) as server:
        yield server


def _checkpoint_windows(engine: Engine) -> list[list[float]]:
    windows: list[list[float]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "wal_checkpoint" in statement:
            windows.append([time.monotonic(), float("inf")])

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "wal_checkpoint" in statement:
            windows[-1][1] = time.monotonic()

    return windows


def test_checkpoints_run_only_while_no_message_waits_for_its_mark(
    engine: Engine, slow_sink: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_customers(engine, 120, now=NOW)
    monkeypatch.setattr(deliver, "SQLITE_CHECKPOINT_EVERY", 5)
    windows = _checkpoint_windows(engine)

    report = deliver.deliver_due(engine, delivery_settings(port=slow_sink.port), now=NOW)

    assert report.sent == 120
    assert all(row.status == OutboxStatus.SENT for row in outbox_rows(engine))
    if engine.dialect.name != "sqlite":
        # PostgreSQL checkpoints on its own, outside our commits' path.
        assert report.checkpoints == 0 and windows == []
        return
    assert report.checkpoints == len(windows) >= 5
    accepted = [r.accepted_at for r in slow_sink.sink.received]
    inside = [t for t in accepted for start, end in windows if start <= t <= end]
    assert inside == []
    # The settlement connection goes back to the pool checkpointing as every other one does.
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == SQLITE_WAL_CHECKPOINT_PAGES
