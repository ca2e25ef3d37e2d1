"""``crm outbox status`` and ``crm outbox retry`` against a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.enums import OutboxStatus
from crm_db.models import OutboxMessage
from crm_db.session import session_scope
from crm_db.types import utcnow
from tests.support.outbox_data import (
    digest_message,
    make_staff,
    outbox_row,
    outbox_rows,
    queue,
    queue_customers,
)


@pytest.fixture
def crm(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    reset_settings_cache()
    yield engine
    reset_settings_cache()


def _run(*args: str) -> str:
    from crm_cli.main import app

    result = CliRunner().invoke(app, ["outbox", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _seed(engine: Engine) -> None:
    """5 care mails (2 sent, 2 failed, 1 pending queued an hour ago) and 1 pending digest."""
    an_hour_ago = utcnow() - timedelta(hours=1)
    queue_customers(engine, 5, now=an_hour_ago)
    with session_scope(engine) as session:
        staff = make_staff(session)
        message = digest_message(staff)
    queue(engine, [message], now=utcnow())
    with session_scope(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([1, 2]))
            .values(status=OutboxStatus.SENT, attempts=1)
        )
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([3, 4]))
            .values(
                status=OutboxStatus.FAILED,
                attempts=8,
                last_error="recipient: 550 5.1.1 <li.na@example.com> unknown user",
            )
        )


def test_status_json_has_the_documented_shape(crm: Engine) -> None:
    _seed(crm)
    payload = json.loads(_run("status", "--json"))

    assert set(payload) == {"total", "by_status", "by_kind", "oldest_pending_s", "last_errors"}
    assert payload["total"] == 6
    assert payload["by_status"] == {"sent": 2, "failed": 2, "pending": 2}
    assert payload["by_kind"] == {
        "revisit_care": {"sent": 2, "failed": 2, "pending": 1},
        "revisit_digest": {"pending": 1},
    }
    assert 3500 <= payload["oldest_pending_s"] <= 3700  # queued an hour ago
    assert [e["id"] for e in payload["last_errors"]] == [4, 3]
    for error in payload["last_errors"]:
        assert error["kind"] == "revisit_care" and error["status"] == "failed"
        assert "li.na@example.com" not in error["error"] and "l***@ex***" in error["error"]


def test_status_text_masks_addresses(crm: Engine) -> None:
    _seed(crm)
    output = _run("status")
    assert "outbox: 6 messages" in output
    assert "revisit_digest" in output and "oldest pending: 60 min" in output
    assert "@example.com" not in output and "l***@ex***" in output


def test_status_of_an_empty_outbox(crm: Engine) -> None:
    payload = json.loads(_run("status", "--json"))
    assert payload == {
        "total": 0,
        "by_status": {},
        "by_kind": {},
        "oldest_pending_s": None,
        "last_errors": [],
    }


def test_retry_failed_requeues_only_failed_rows_of_the_kind(crm: Engine) -> None:
    _seed(crm)
    assert "re-queued 0 failed messages of kind revisit_digest" in _run(
        "retry", "--failed", "--kind", "revisit_digest"
    )
    before = utcnow()
    assert "re-queued 2 failed messages" in _run("retry", "--failed")

    statuses = [row.status for row in outbox_rows(crm)]
    assert statuses.count(OutboxStatus.FAILED) == 0
    assert statuses.count(OutboxStatus.PENDING) == 4
    assert statuses.count(OutboxStatus.SENT) == 2
    requeued = outbox_row(crm, 3)
    assert requeued.attempts == 0 and requeued.next_attempt_at >= before - timedelta(seconds=1)


def test_retry_needs_an_explicit_selection(crm: Engine) -> None:
    from crm_cli.main import app

    result = CliRunner().invoke(app, ["outbox", "retry"])
    assert result.exit_code == 2 and "--failed" in result.output
    result = CliRunner().invoke(app, ["outbox", "retry", "--failed", "--kind", "nope"])
    assert result.exit_code == 2 and "unknown kind" in result.output
