"""A relay that refuses the client is a configuration error: against aiosmtpd answering as
Postfix 3.7 does, rows stay pending with their attempts, no address is flagged, and the run
stops with one line naming the cause. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from crm_db.enums import OutboxStatus
from crm_db.models import Customer
from crm_db.session import session_scope
from tasks.mail.classify import REFUSAL_STREAK
from tasks.mail.deliver import deliver_due
from tasks.mail.smtp_pool import SmtpConfigurationError
from tests.support.outbox_data import delivery_settings, outbox_rows, queue_customers
from tests.support.postfix_replies import (
    RECIPIENT_ACCESS_DENIED,
    UNKNOWN_USER,
    PostfixRefusal,
    client_rejected,
    recipient_access_denied,
    relay_deferred,
    relay_denied,
    starttls_first,
)
from tests.support.smtp_servers import make_certificate, running_server

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

CASES: dict[str, tuple[Callable[[], PostfixRefusal], str]] = {
    "client host rejected": (client_rejected, "refuses this client host"),
    "relay access deferred (454)": (relay_deferred, "refuses to relay"),
    "relay access denied (554)": (relay_denied, "refuses to relay"),
    "starttls first (530)": (starttls_first, "requires STARTTLS first"),
}


def _flagged(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(session.scalars(select(Customer).where(Customer.email_undeliverable)).all())


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refused_client_keeps_every_row_pending_and_flags_nobody(
    engine: Engine, case: str
) -> None:
    factory, cause = CASES[case]
    queue_customers(engine, 12, now=NOW)
    sink = factory()
    with running_server(sink) as server:
        settings = delivery_settings(port=server.port, smtp_concurrency=3)
        with pytest.raises(SmtpConfigurationError) as raised:
            deliver_due(engine, settings, now=NOW)

    message = str(raised.value)
    assert cause in message
    assert "\n" not in message
    assert f"127.0.0.1:{server.port}" in message
    assert sink.received == []
    rows = outbox_rows(engine)
    assert [r.status for r in rows] == [OutboxStatus.PENDING] * 12
    assert all(r.attempts == 0 and r.lease_owner is None for r in rows)
    assert _flagged(engine) == 0
    # The run stopped at the refusal: at most one message per lane was tried.
    assert sink.mail_commands <= settings.smtp_concurrency


def test_a_bare_policy_refusal_fails_that_row_without_flagging_the_address(
    engine: Engine,
) -> None:
    """``554 5.7.1 <x>: Recipient address rejected: Access denied`` (check_recipient_access):
    about one recipient, so the others are sent; it flags nothing (5.7 is policy, not a bad
    address); an unknown user (5.1.1) still is flagged."""
    queue_customers(engine, 3, now=NOW)
    blocked, unknown, fine = (row.recipient_email for row in outbox_rows(engine))
    sink = PostfixRefusal()
    sink.rcpt_replies[blocked] = f"554 5.7.1 <{blocked}>: Recipient address rejected: Access denied"
    sink.rcpt_replies[unknown] = (
        f"550 5.1.1 <{unknown}>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    with running_server(sink) as server:
        report = deliver_due(engine, delivery_settings(port=server.port), now=NOW)

    assert (report.sent, report.failed, report.flagged) == (1, 2, 1)
    with session_scope(engine) as session:
        flags = {c.email: c.email_undeliverable for c in session.scalars(select(Customer))}
    assert flags == {blocked: False, unknown: True, fine: False}


def test_implicit_tls_against_a_plain_port_names_the_mismatch(
    engine: Engine, tmp_path: Path
) -> None:
    queue_customers(engine, 2, now=NOW)
    cert = make_certificate(tmp_path)
    with running_server() as server:
        settings = delivery_settings(
            port=server.port, smtp_tls="implicit", smtp_ca_file=str(cert.cert_file)
        )
        with pytest.raises(SmtpConfigurationError, match="is not an implicit-TLS port"):
            deliver_due(engine, settings, now=NOW)
    assert all(r.status == OutboxStatus.PENDING and r.attempts == 0 for r in outbox_rows(engine))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_postfix_login_failure_is_one_line_naming_the_credentials(engine: Engine) -> None:
    from tests.support.postfix_replies import POSTFIX_AUTH_FAILED, postfix_password_checker

    queue_customers(engine, 2, now=NOW)
    checker = postfix_password_checker("crm", "right")
    with running_server(PostfixRefusal(), plaintext_authenticator=checker) as server:
        settings = delivery_settings(port=server.port, smtp_user="crm", smtp_password="wrong")
        with pytest.raises(SmtpConfigurationError) as raised:
            deliver_due(engine, settings, now=NOW)
    message = str(raised.value)
    assert POSTFIX_AUTH_FAILED.split(" ", 1)[1] in message
    assert "CRM_SMTP_USER / CRM_SMTP_PASSWORD" in message and "\n" not in message
    assert "wrong" not in message


def test_the_same_refusal_for_every_recipient_is_the_relay_refusing_us(engine: Engine) -> None:
    """Postfix's ``reject`` at the end of ``smtpd_recipient_restrictions`` answers every RCPT
    ``554 5.7.1 <rcpt>: Recipient address rejected: Access denied``: nothing in the text says
    "client", but three different recipients refused alike with nothing accepted is the relay
    refusing us. Rows stay pending unattempted, no address is flagged, the run stops."""
    queue_customers(engine, 12, now=NOW)
    sink = recipient_access_denied()
    with running_server(sink) as server:
        settings = delivery_settings(port=server.port, smtp_concurrency=3)
        with pytest.raises(SmtpConfigurationError) as raised:
            deliver_due(engine, settings, now=NOW)

    message = str(raised.value)
    assert "3 different recipients the same refusal" in message
    assert "\n" not in message
    rows = outbox_rows(engine)
    assert not any(row.recipient_email in message for row in rows)  # masked
    assert [r.status for r in rows] == [OutboxStatus.PENDING] * 12
    assert all(r.attempts == 0 and r.lease_owner is None for r in rows)
    assert _flagged(engine) == 0
    # It stopped at the third refusal: the lanes' transactions then in progress at most.
    assert REFUSAL_STREAK <= sink.rcpt_commands < REFUSAL_STREAK + settings.smtp_concurrency


def test_a_run_of_unknown_users_is_still_about_the_addresses(engine: Engine) -> None:
    """``550 5.1.1 User unknown`` for every recipient (a list of dead addresses) is about each
    address (RFC 3463 X.1.x): every row fails and every address is flagged, the run goes on."""
    queue_customers(engine, 5, now=NOW)
    with running_server(PostfixRefusal(rcpt_reply=UNKNOWN_USER)) as server:
        report = deliver_due(engine, delivery_settings(port=server.port), now=NOW)

    assert (report.sent, report.failed, report.flagged) == (0, 5, 5)
    assert _flagged(engine) == 5


def test_refusals_held_back_are_settled_as_usual_once_a_message_is_accepted(
    engine: Engine,
) -> None:
    """Two recipients refused alike, then acceptances: the two refusals were about them (the
    rows fail, 5.7 flags nobody) and the rest is sent; nothing is left pending."""
    queue_customers(engine, 6, now=NOW)
    first, second, *_ = (row.recipient_email for row in outbox_rows(engine))
    sink = PostfixRefusal()
    for address in (first, second):
        sink.rcpt_replies[address] = RECIPIENT_ACCESS_DENIED.replace("{rcpt}", address)
    with running_server(sink) as server:
        report = deliver_due(
            engine, delivery_settings(port=server.port, smtp_concurrency=1), now=NOW
        )

    assert (report.sent, report.failed, report.flagged, report.released) == (4, 2, 0, 0)
    statuses = {r.recipient_email: r.status for r in outbox_rows(engine)}
    assert statuses[first] == statuses[second] == OutboxStatus.FAILED
    assert sorted(s for s in statuses.values()).count(OutboxStatus.SENT) == 4


def test_fewer_refusals_than_the_streak_fail_as_usual_when_the_run_ends(engine: Engine) -> None:
    """Two messages, both refused alike: too few to say it is the relay, so both fail as any
    refusal would, at the end of the run (held rows are never left claimed)."""
    queue_customers(engine, 2, now=NOW)
    with running_server(recipient_access_denied()) as server:
        report = deliver_due(engine, delivery_settings(port=server.port), now=NOW)

    assert (report.sent, report.failed, report.released) == (0, 2, 0)
    rows = outbox_rows(engine)
    assert [r.status for r in rows] == [OutboxStatus.FAILED] * 2
    assert all(r.lease_owner is None and r.attempts == 1 for r in rows)
