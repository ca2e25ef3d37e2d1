"""Delivery against real aiosmtpd servers with injected faults, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from crm_core.signing import verify
from crm_db.enums import OutboxStatus
from crm_db.models import Customer, OutboxMessage, Staff
from crm_db.session import session_scope
from tasks.mail.deliver import deliver_due
from tasks.mail.smtp_pool import SmtpConfigurationError
from tests.support.outbox_data import (
    TEST_SECRET,
    care_message,
    delivery_settings,
    digest_message,
    make_customer,
    make_staff,
    outbox_row,
    outbox_rows,
    queue,
    queue_customers,
)
from tests.support.smtp_servers import (
    FaultySink,
    SmtpServer,
    free_port,
    make_certificate,
    running_server,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_server(FaultySink()) as server:
        yield server


def _statuses(engine: Engine) -> list[OutboxStatus]:
    return [row.status for row in outbox_rows(engine)]


def test_delivers_staff_and_customer_mail_once_with_their_message_ids(
    engine: Engine, smtp: SmtpServer
) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session)
        staff = make_staff(session)
        queue_ok = [care_message(customer), digest_message(staff)]
    queue(engine, queue_ok, now=NOW)

    report = deliver_due(engine, delivery_settings(port=smtp.port), now=NOW)

    assert (report.claimed, report.sent, report.failed) == (2, 2, 0)
    assert report.kind_counts() == {"revisit_care": {"sent": 1}, "revisit_digest": {"sent": 1}}
    rows = outbox_rows(engine)
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 for r in rows)
    assert all(r.sent_at is not None and r.sent_at >= NOW for r in rows)
    assert all(r.smtp_response and r.smtp_response.startswith("250 ") for r in rows)
    assert all(r.lease_owner is None and r.lease_until is None for r in rows)
    assert sorted(smtp.sink.message_ids()) == sorted(r.message_id for r in rows)

    by_id = {r.message_id: r for r in smtp.sink.received}
    care_row, digest_row = rows
    care = message_from_bytes(by_id[care_row.message_id].data or b"", policy=policy.default)
    digest = message_from_bytes(by_id[digest_row.message_id].data or b"", policy=policy.default)
    assert by_id[care_row.message_id].recipients == [care_row.recipient_email]
    # Customer mail carries a working one-click unsubscribe link; staff mail none.
    link = str(care["List-Unsubscribe"]).strip("<>")
    assert care["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith("https://crm.example.test/u/")
    claims = verify(TEST_SECRET.encode(), "unsubscribe", link.rsplit("/", 1)[1], NOW)
    assert claims == {"customer": care_row.customer_id}
    assert link in care.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert digest["List-Unsubscribe"] is None
    # The care email asks "solved?" with a signed link naming its own outbox row (the /f/ page).
    text = care.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    feedback = re.search(r"https://crm\.example\.test/f/([A-Za-z0-9_.-]+)", text)
    assert feedback is not None
    assert verify(TEST_SECRET.encode(), "care_feedback", feedback[1], NOW) == {
        "message": care_row.id
    }
    digest_text = digest.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "/f/" not in digest_text

    # A second run finds nothing due and sends nothing.
    again = deliver_due(engine, delivery_settings(port=smtp.port), now=LATER)
    assert again.claimed == 0
    assert len(smtp.sink.received) == 2


def test_451_three_times_then_250_delivers_once_after_four_attempts(
    engine: Engine, smtp: SmtpServer
) -> None:
    queue_customers(engine, 1, now=NOW)
    smtp.sink.data_replies.extend(["451 4.3.0 try again later"] * 3)
    settings = delivery_settings(port=smtp.port, outbox_backoff_base_s=60)

    when = NOW
    for attempt in (1, 2, 3):
        report = deliver_due(engine, settings, now=when)
        assert report.retried == 1
        row = outbox_row(engine, 1)
        assert row.status == OutboxStatus.PENDING and row.attempts == attempt
        assert row.last_error is not None and "451" in row.last_error
        # Exponential backoff with jitter in the upper half of the step: 60 s, 120 s, 240 s.
        step = 60 * 2 ** (attempt - 1)
        delay = (row.next_attempt_at - when).total_seconds()
        assert step / 2 <= delay <= step + 5
        # Not due before its time: a run shortly before it sends nothing. (A run's clock is
        # its start plus the time it has run, set-up included, so "shortly" leaves it 10 s.)
        assert (
            deliver_due(engine, settings, now=row.next_attempt_at - timedelta(seconds=10)).claimed
            == 0
        )
        when = row.next_attempt_at

    report = deliver_due(engine, settings, now=when)
    assert report.sent == 1
    row = outbox_row(engine, 1)
    assert row.status == OutboxStatus.SENT and row.attempts == 4 and row.last_error is None
    assert smtp.sink.message_ids() == [row.message_id]
    assert smtp.sink.data_commands == 4


def test_retries_stop_at_max_attempts(engine: Engine, smtp: SmtpServer) -> None:
    queue_customers(engine, 1, now=NOW)
    smtp.sink.data_replies.extend(["451 4.3.0 later"] * 10)
    settings = delivery_settings(port=smtp.port, outbox_max_attempts=2)
    deliver_due(engine, settings, now=NOW)
    deliver_due(engine, settings, now=LATER)
    row = outbox_row(engine, 1)
    assert row.status == OutboxStatus.FAILED and row.attempts == 2
    assert deliver_due(engine, settings, now=LATER + timedelta(days=1)).claimed == 0


def test_550_for_one_recipient_fails_that_row_only_and_flags_the_address(
    engine: Engine, smtp: SmtpServer
) -> None:
    with session_scope(engine) as session:
        customers = [make_customer(session) for _ in range(3)]
        bad_staff = make_staff(session)
        messages = [care_message(c) for c in customers] + [digest_message(bad_staff)]
        bad_customer_email = str(customers[1].email)
        bad_staff_email = str(bad_staff.email)
        ids = (customers[1].id, customers[0].id, bad_staff.id)
    queue(engine, messages, now=NOW)
    smtp.sink.rcpt_replies[bad_customer_email] = "550 5.1.1 mailbox unknown"
    smtp.sink.rcpt_replies[bad_staff_email] = "553 5.1.3 bad address"

    report = deliver_due(engine, delivery_settings(port=smtp.port), now=NOW)

    assert (report.sent, report.failed, report.flagged) == (2, 2, 2)
    rows = {r.recipient_email: r for r in outbox_rows(engine)}
    failed = rows[bad_customer_email]
    assert failed.status == OutboxStatus.FAILED and failed.attempts == 1
    assert failed.smtp_response is not None and "550" in failed.smtp_response
    assert rows[bad_staff_email].status == OutboxStatus.FAILED
    assert sum(r.status == OutboxStatus.SENT for r in rows.values()) == 2
    with session_scope(engine) as session:
        assert session.get_one(Customer, ids[0]).email_undeliverable is True
        assert session.get_one(Customer, ids[1]).email_undeliverable is False
        assert session.get_one(Staff, ids[2]).email_undeliverable is True

    # Never retried: much later, nothing is due and the server sees no new attempt.
    rcpt_before = smtp.sink.data_commands
    assert deliver_due(engine, delivery_settings(port=smtp.port), now=LATER).claimed == 0
    assert smtp.sink.data_commands == rcpt_before


def test_421_at_greeting_is_retried_on_a_new_connection(engine: Engine, smtp: SmtpServer) -> None:
    queue_customers(engine, 5, now=NOW)
    smtp.sink.greeting_replies.extend(["421 4.3.2 too busy, come back later"] * 2)

    report = deliver_due(engine, delivery_settings(port=smtp.port, smtp_concurrency=1), now=NOW)

    assert report.sent == 5
    assert smtp.sink.connections >= 3
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 for r in outbox_rows(engine))
    assert len(set(smtp.sink.message_ids())) == 5


def test_a_whole_outage_leaves_rows_pending_and_the_next_run_delivers_each_once(
    engine: Engine,
) -> None:
    queue_customers(engine, 6, now=NOW)
    port = free_port()  # nothing listens here yet
    settings = delivery_settings(port=port)

    report = deliver_due(engine, settings, now=NOW)

    assert report.sent == 0 and report.claimed == 0
    assert report.stopped is not None and "smtp unavailable" in report.stopped
    rows = outbox_rows(engine)
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in rows)

    with running_server(FaultySink(), port=port) as server:
        report = deliver_due(engine, settings, now=NOW + timedelta(minutes=5))
        assert report.sent == 6
        assert sorted(server.sink.message_ids()) == sorted(r.message_id for r in rows)
        assert server.sink.duplicates() == 0
    assert all(r.status == OutboxStatus.SENT for r in outbox_rows(engine))


def test_a_connection_dropped_mid_data_is_replaced_and_the_message_retried(
    engine: Engine, smtp: SmtpServer
) -> None:
    queue_customers(engine, 4, now=NOW)
    smtp.sink.drop_data = 1
    settings = delivery_settings(port=smtp.port, smtp_concurrency=1)

    report = deliver_due(engine, settings, now=NOW)

    assert (report.sent, report.retried) == (3, 1)  # the lane reconnected for the others
    retried = [r for r in outbox_rows(engine) if r.status == OutboxStatus.PENDING]
    assert len(retried) == 1 and retried[0].attempts == 1
    error = retried[0].last_error
    assert error is not None and error.startswith("attempt 1: disconnect")

    report = deliver_due(engine, settings, now=LATER)
    assert report.sent == 1
    assert outbox_row(engine, retried[0].id).attempts == 2
    assert len(smtp.sink.message_ids()) == 4 and smtp.sink.duplicates() == 0


def test_a_relay_that_stores_then_answers_late_gets_the_message_once(engine: Engine) -> None:
    # The case: the reply after the data takes 3 s, longer than the command timeout.
    queue_customers(engine, 2, now=NOW)
    settings = delivery_settings(
        smtp_timeout_s=2.0, smtp_data_timeout_s=10.0, outbox_lease_s=30.0, smtp_concurrency=1
    )
    with running_server(FaultySink(data_delay_s=3.0)) as server:
        report = deliver_due(
            engine, settings.model_copy(update={"smtp_port": server.port}), now=NOW
        )
        assert (report.sent, report.retried, report.unknown) == (2, 0, 0)
        assert server.sink.duplicates() == 0 and len(server.sink.message_ids()) == 2
    assert all(r.status == OutboxStatus.SENT and r.attempts == 1 for r in outbox_rows(engine))


def test_no_reply_after_the_data_is_an_unknown_outcome_retried_once_later(
    engine: Engine,
) -> None:
    queue_customers(engine, 1, now=NOW)
    settings = delivery_settings(
        smtp_timeout_s=1.0, smtp_data_timeout_s=0.5, outbox_lease_s=10.0, smtp_concurrency=1
    )
    with running_server(FaultySink(data_delay_s=3.0)) as server:
        settings = settings.model_copy(update={"smtp_port": server.port})
        started = time.monotonic()
        report = deliver_due(engine, settings, now=NOW)
        elapsed = time.monotonic() - started

        assert (report.unknown, report.retried, report.sent) == (1, 0, 0)
        assert elapsed < 2.5 < settings.outbox_lease_s  # the data timeout ended it
        row = outbox_row(engine, 1)
        assert row.status == OutboxStatus.PENDING and row.attempts == 1
        assert row.last_error is not None and row.last_error.startswith("unknown outcome")
        assert row.lease_owner is None  # settled by us, not left to expire
        wait = (row.next_attempt_at - NOW).total_seconds()
        assert wait >= settings.outbox_unknown_retry_s  # a long delay, not the backoff

        # The one retry: unknown again, and the row is failed for a person to look at.
        later = NOW + timedelta(seconds=settings.outbox_unknown_retry_s + 60)
        again = deliver_due(engine, settings, now=later)
    assert (again.claimed, again.failed) == (1, 1)
    row = outbox_row(engine, 1)
    assert row.status == OutboxStatus.FAILED and row.attempts == 2
    assert row.last_error is not None and row.last_error.startswith("unknown outcome")


def test_starttls_required_but_not_offered_sends_nothing(engine: Engine, smtp: SmtpServer) -> None:
    queue_customers(engine, 3, now=NOW)
    settings = delivery_settings(port=smtp.port, smtp_tls="starttls")

    with pytest.raises(SmtpConfigurationError, match="does not offer STARTTLS"):
        deliver_due(engine, settings, now=NOW)

    assert smtp.sink.received == [] and smtp.sink.data_commands == 0
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in outbox_rows(engine))


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_tls_modes_deliver_with_a_trusted_certificate(
    engine: Engine, tmp_path: Path, mode: str
) -> None:
    queue_customers(engine, 2, now=NOW)
    cert = make_certificate(tmp_path)
    contexts = (
        {"tls_context": cert.server_context()}
        if mode == "starttls"
        else {"implicit_tls_context": cert.server_context()}
    )
    with running_server(FaultySink(), **contexts) as server:
        settings = delivery_settings(
            port=server.port, smtp_tls=mode, smtp_ca_file=str(cert.cert_file)
        )
        report = deliver_due(engine, settings, now=NOW)
        assert report.sent == 2
        assert len(server.sink.message_ids()) == 2


def test_an_untrusted_certificate_is_a_configuration_error(engine: Engine, tmp_path: Path) -> None:
    queue_customers(engine, 1, now=NOW)
    cert = make_certificate(tmp_path)
    with running_server(FaultySink(), tls_context=cert.server_context()) as server:
        settings = delivery_settings(port=server.port, smtp_tls="starttls")  # system CAs only
        with pytest.raises(SmtpConfigurationError, match="certificate"):
            deliver_due(engine, settings, now=NOW)
        assert server.sink.received == []
    assert _statuses(engine) == [OutboxStatus.PENDING]


def test_unsubscribed_and_opted_out_customers_are_suppressed_at_send_time(
    engine: Engine, smtp: SmtpServer
) -> None:
    with session_scope(engine) as session:
        plain = make_customer(session)
        unsubscribed = make_customer(session)
        no_marketing = make_customer(session)
        no_surveys = make_customer(session, survey_opt_out=True)  # care mail is not a survey
        staff = make_staff(session)
        messages = [care_message(c) for c in (plain, unsubscribed, no_marketing, no_surveys)]
        messages.append(digest_message(staff))
        ids = {"unsubscribed": unsubscribed.id, "no_marketing": no_marketing.id}
    queue(engine, messages, now=NOW)
    # Consent changed after the messages were queued: the send-time state wins.
    with session_scope(engine) as session:
        session.execute(
            update(Customer).where(Customer.id == ids["unsubscribed"]).values(unsubscribed_at=NOW)
        )
        session.execute(
            update(Customer)
            .where(Customer.id == ids["no_marketing"])
            .values(marketing_opt_out=True)
        )

    report = deliver_due(engine, delivery_settings(port=smtp.port), now=NOW)

    assert (report.sent, report.suppressed) == (3, 2)
    rows = {r.customer_id: r for r in outbox_rows(engine)}
    for key in ("unsubscribed", "no_marketing"):
        row = rows[ids[key]]
        assert row.status == OutboxStatus.SUPPRESSED and row.sent_at is None
        assert row.last_error is not None and row.last_error.startswith("suppressed")
        assert row.message_id not in smtp.sink.message_ids()
    assert len(smtp.sink.received) == 3


def test_an_expired_lease_comes_back_but_a_live_one_is_left_alone(
    engine: Engine, smtp: SmtpServer
) -> None:
    queue_customers(engine, 2, now=NOW)
    with session_scope(engine) as session:
        for row_id, lease_until in ((1, NOW - timedelta(seconds=1)), (2, NOW + timedelta(hours=1))):
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row_id)
                .values(
                    status=OutboxStatus.SENDING,
                    lease_until=lease_until,
                    lease_owner="crashed-host:1:x",
                    attempts=1,
                )
            )

    report = deliver_due(engine, delivery_settings(port=smtp.port), now=NOW)

    assert report.sent == 1
    assert outbox_row(engine, 1).status == OutboxStatus.SENT
    assert outbox_row(engine, 1).attempts == 2
    live = outbox_row(engine, 2)
    assert live.status == OutboxStatus.SENDING and live.lease_owner == "crashed-host:1:x"


def test_limit_caps_the_rows_claimed(engine: Engine, smtp: SmtpServer) -> None:
    queue_customers(engine, 7, now=NOW)
    report = deliver_due(
        engine, delivery_settings(port=smtp.port, outbox_batch_size=2), now=NOW, limit=3
    )
    assert (report.claimed, report.sent) == (3, 3)
    assert _statuses(engine).count(OutboxStatus.PENDING) == 4


def test_a_context_missing_a_template_value_fails_that_row_only(
    engine: Engine, smtp: SmtpServer
) -> None:
    with session_scope(engine) as session:
        ok, broken = make_customer(session), make_customer(session)
        context = care_message(broken).context
        del context["manager_name"]
        messages = [care_message(ok), care_message(broken, context=context)]
    queue(engine, messages, now=NOW)

    report = deliver_due(engine, delivery_settings(port=smtp.port), now=NOW)

    assert (report.sent, report.failed) == (1, 1)
    failed = [r for r in outbox_rows(engine) if r.status == OutboxStatus.FAILED]
    assert failed[0].last_error is not None and "manager_name" in failed[0].last_error
    assert len(smtp.sink.received) == 1


def test_many_messages_over_several_batches_are_each_sent_once(
    engine: Engine, smtp: SmtpServer
) -> None:
    queue_customers(engine, 120, now=NOW)
    smtp.sink.keep_data = False
    settings = delivery_settings(port=smtp.port, outbox_batch_size=25, smtp_concurrency=3)

    report = deliver_due(engine, settings, now=NOW)

    assert (report.claimed, report.sent) == (120, 120)
    assert len(smtp.sink.message_ids()) == 120 and smtp.sink.duplicates() == 0
    assert set(_statuses(engine)) == {OutboxStatus.SENT}


def test_login_over_starttls_and_a_refused_login(engine: Engine, tmp_path: Path) -> None:
    queue_customers(engine, 2, now=NOW)
    cert = make_certificate(tmp_path)
    with running_server(
        FaultySink(), tls_context=cert.server_context(), login=("crm", "s3cret")
    ) as server:
        tls = {"smtp_tls": "starttls", "smtp_ca_file": str(cert.cert_file)}
        wrong = delivery_settings(port=server.port, smtp_user="crm", smtp_password="wrong", **tls)
        with pytest.raises(SmtpConfigurationError, match="refused our login"):
            deliver_due(engine, wrong, now=NOW)
        assert _statuses(engine) == [OutboxStatus.PENDING] * 2

        right = delivery_settings(port=server.port, smtp_user="crm", smtp_password="s3cret", **tls)
        assert deliver_due(engine, right, now=NOW).sent == 2
        assert len(server.sink.message_ids()) == 2


def test_a_relay_demanding_authentication_stops_the_run_and_keeps_rows(
    engine: Engine,
) -> None:
    queue_customers(engine, 3, now=NOW)
    with running_server(FaultySink(), auth_required_without_tls=True) as server:
        settings = delivery_settings(port=server.port, smtp_concurrency=2)
        with pytest.raises(SmtpConfigurationError, match="requires authentication"):
            deliver_due(engine, settings, now=NOW)
        assert server.sink.received == []
    rows = outbox_rows(engine)
    # Rows already claimed went back unsent, their attempt not counted.
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in rows)
    assert all(r.lease_owner is None for r in rows)
