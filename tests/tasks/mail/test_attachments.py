"""Attachments on outbox messages: stored with the row in the same transaction, size-capped,
and rebuilt into the same MIME on every delivery attempt. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import Engine, func, select

from crm_db.enums import OutboxStatus
from crm_db.models import OutboxAttachment, OutboxMessage
from crm_db.session import session_scope
from tasks.mail.build import build_one
from tasks.mail.claim import claim_batch
from tasks.mail.deliver import _Run, deliver_due
from tasks.mail.message import Attachment
from tasks.mail.outbox import InvalidOutboxMessage, NewMessage, enqueue
from tasks.mail.settle import Settlement
from tests.support.outbox_data import (
    delivery_settings,
    digest_message,
    make_staff,
    outbox_rows,
)
from tests.support.smtp_servers import FaultySink, running_server

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
XLSX = b"PK\x03\x04" + bytes(range(256)) * 64
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ATTACHMENTS = (
    Attachment("chart-revenue.png", "image/png", PNG, "chart-revenue@crm-flows"),
    Attachment("targets-2026-02.xlsx", XLSX_TYPE, XLSX),
)


def _report_message(engine: Engine, key: str = "report:2026-02:staff") -> NewMessage:
    with session_scope(engine) as session:
        staff = make_staff(session)
        message = digest_message(staff, key=key)
    return replace(message, attachments=ATTACHMENTS)


def _count(engine: Engine, model: type[OutboxMessage] | type[OutboxAttachment]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model)) or 0)


def test_attachments_are_stored_with_their_row_in_order(engine: Engine) -> None:
    message = _report_message(engine)
    with session_scope(engine) as session:
        result = enqueue(session, [message], now=NOW)
    assert result.inserted == 1
    with engine.connect() as conn:
        (row_id,) = conn.scalars(select(OutboxMessage.id)).all()
        stored = conn.execute(
            select(
                OutboxAttachment.outbox_id,
                OutboxAttachment.position,
                OutboxAttachment.filename,
                OutboxAttachment.content_type,
                OutboxAttachment.content_id,
                OutboxAttachment.data,
            ).order_by(OutboxAttachment.position)
        ).all()
    assert [tuple(r) for r in stored] == [
        (row_id, 0, "chart-revenue.png", "image/png", "chart-revenue@crm-flows", PNG),
        (row_id, 1, "targets-2026-02.xlsx", XLSX_TYPE, None, XLSX),
    ]


def test_enqueueing_an_existing_key_adds_no_attachments(engine: Engine) -> None:
    message = _report_message(engine)
    for _ in range(2):
        with session_scope(engine) as session:
            enqueue(session, [message], now=NOW)
    assert (_count(engine, OutboxMessage), _count(engine, OutboxAttachment)) == (1, 2)


def test_a_rolled_back_transaction_keeps_neither_row_nor_attachments(engine: Engine) -> None:
    message = _report_message(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        enqueue(session, [message], now=NOW)
        raise RuntimeError("the flow failed after queuing")
    assert (_count(engine, OutboxMessage), _count(engine, OutboxAttachment)) == (0, 0)


def test_over_the_cap_is_refused_naming_key_and_attachment_and_writes_nothing(
    engine: Engine,
) -> None:
    fine = _report_message(engine, key="report:2026-02:fine")
    big = replace(
        _report_message(engine, key="report:2026-02:big"),
        attachments=(*ATTACHMENTS, Attachment("raw-data.xlsx", XLSX_TYPE, b"x" * 5000)),
    )
    cap = len(PNG) + len(XLSX) + 4999
    with pytest.raises(InvalidOutboxMessage) as err, session_scope(engine) as session:
        enqueue(session, [fine, big], now=NOW, attachment_cap=cap)
    assert err.value.idempotency_key == "report:2026-02:big"
    assert "raw-data.xlsx" in err.value.field
    assert "outbox_attachment_max_bytes" in str(err.value)
    assert (_count(engine, OutboxMessage), _count(engine, OutboxAttachment)) == (0, 0)


def test_the_cap_defaults_to_the_setting(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_core.settings import get_settings

    assert get_settings().outbox_attachment_max_bytes == 10 * 1024 * 1024
    monkeypatch.setenv("CRM_OUTBOX_ATTACHMENT_MAX_BYTES", "100")
    get_settings.cache_clear()
    try:
        message = _report_message(engine)
        with (
            pytest.raises(InvalidOutboxMessage, match="over the cap of 100"),
            session_scope(engine) as session,
        ):
            enqueue(session, [message], now=NOW)
    finally:
        get_settings.cache_clear()


def test_a_malformed_attachment_is_refused_by_name(engine: Engine) -> None:
    bad = replace(
        _report_message(engine), attachments=(Attachment("chart.png", "image/png", b"x", "a b"),)
    )
    with pytest.raises(InvalidOutboxMessage) as err, session_scope(engine) as session:
        enqueue(session, [bad], now=NOW)
    assert "chart.png" in err.value.field and "content_id" in err.value.problem


def _parse(data: bytes) -> EmailMessage:
    back = message_from_bytes(data, policy=policy.default)
    assert isinstance(back, EmailMessage)
    return back


def test_a_claimed_row_builds_the_same_bytes_twice(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(session, [_report_message(engine)], now=NOW)
    (item,) = claim_batch(
        engine, now=NOW, lease_until=NOW + timedelta(minutes=5), owner="t", limit=10
    )
    assert item.attachments == ATTACHMENTS and item.created_at == NOW
    settings = delivery_settings()
    run = _Run.__new__(_Run)  # only prepare(): the decisions that need no run state
    job = _Run.prepare(run, item, NOW)
    assert not isinstance(job, Settlement)

    def build(at: datetime) -> bytes | str:
        return build_one(
            job,  # type: ignore[arg-type]
            sender=settings.mail_from,
            base_url=settings.public_base_url,
            date=at,
            key=settings.signing_key(),
        )

    first, second = build(NOW), build(NOW + timedelta(hours=3))  # the attempt's time
    assert isinstance(first, bytes) and first == second


def test_a_retry_after_451_sends_identical_mime_with_the_attachments(engine: Engine) -> None:
    with session_scope(engine) as session:
        enqueue(session, [_report_message(engine)], now=NOW)
    sink = FaultySink(data_replies=["451 4.3.0 try again later"])
    with running_server(sink) as server:
        settings = delivery_settings(port=server.port, outbox_backoff_base_s=1.0)
        first = deliver_due(engine, settings, now=NOW)
        assert (first.retried, first.sent) == (1, 0)
        second = deliver_due(engine, settings, now=NOW + timedelta(hours=1))
        assert (second.sent, second.retried) == (1, 0)
    (row,) = outbox_rows(engine)
    assert row.status is OutboxStatus.SENT and row.attempts == 2
    refused, accepted = sink.data_seen
    assert refused == accepted  # same Message-ID, Date, boundaries, CIDs and bodies
    back = _parse(accepted)
    assert back["Message-ID"] == row.message_id
    assert back["Date"].datetime == NOW  # the row's creation, not the attempt
    assert back.get_content_type() == "multipart/mixed"
    html = back.get_body(("html",))
    assert html is not None
    related = next(p for p in back.walk() if p.get_content_type() == "multipart/related")
    image = next(p for p in related.iter_parts() if p.get_content_type() == "image/png")
    assert (image["Content-ID"], image.get_content()) == ("<chart-revenue@crm-flows>", PNG)
    (report,) = back.iter_attachments()
    assert (report.get_filename(), report.get_content()) == ("targets-2026-02.xlsx", XLSX)
