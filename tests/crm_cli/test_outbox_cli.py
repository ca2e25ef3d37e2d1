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


def test_retry_clear_flags_clears_only_flags_set_by_a_refused_client_and_audits_them(
    crm: Engine,
) -> None:
    """Row 1: the old behaviour flagged its customer on ``Client host rejected``; row 2: a real
    unknown user (5.1.1); row 3: refused client, but the customer's address changed since.
    Only row 1's flag is cleared, and that clearance is recorded."""
    from sqlalchemy import select

    from crm_db.models import AddressFlagClearance, Customer

    queue_customers(crm, 3, now=utcnow())
    refused = "recipient: 554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    unknown = "recipient: 550 5.1.1 <x@example.test>: Recipient address rejected: User unknown"
    with session_scope(crm) as session:
        for row_id, error in ((1, refused), (2, unknown), (3, refused)):
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(status=OutboxStatus.FAILED, attempts=1, last_error=error)
            )
        customers = session.scalars(select(Customer).order_by(Customer.id)).all()
        for customer in customers:
            customer.email_undeliverable = True
        customers[2].email = "new.address@example.test"

    plain = _run("retry", "--failed")
    assert "re-queued 3" in plain and "cleared" not in plain
    with session_scope(crm) as session:
        assert all(c.email_undeliverable for c in session.scalars(select(Customer)))
        session.execute(update(OutboxMessage).values(status=OutboxStatus.FAILED))

    output = _run("retry", "--failed", "--clear-flags")

    assert "re-queued 3" in output and "cleared 1 undeliverable flags" in output
    with session_scope(crm) as session:
        flags = [
            c.email_undeliverable for c in session.scalars(select(Customer).order_by(Customer.id))
        ]
        [audit] = session.scalars(select(AddressFlagClearance)).all()
        assert flags == [False, True, True]
        assert (audit.outbox_id, audit.customer_id, audit.staff_id) == (1, customers[0].id, None)
        assert "Client host rejected" in audit.reason
