"""The care-feedback loop end to end: the revisits flow queues a care email, deliver_outbox sends
it to a real SMTP server, the customer follows the link in it and answers "not solved" on the
real web app, and the next working day's revisits run puts the call in the manager's digest."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from crm_core.settings import get_settings, reset_settings_cache
from crm_db.enums import (
    AbcClass,
    ComplaintStatus,
    ContactChannel,
    ContactOutcome,
    EventSource,
    RevisitStatus,
    Severity,
)
from crm_db.models import CareFeedback, Complaint, ContactHistory, OutboxMessage, Revisit
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from crm_web.app import create_app
from flows.deliver_outbox import deliver_outbox
from flows.revisits import revisits
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.lifecycle import Transition
from tasks.revisits.rules.care_feedback import follow_up_due
from tasks.rules.calendar import WorkCalendar
from tests.factories import add_sla_policies, make_customer, make_org
from tests.support.outbox_data import TEST_SECRET
from tests.support.smtp_servers import FaultySink, SmtpServer, running_server

pytestmark = pytest.mark.usefixtures("prefect_harness")

MONDAY = date(2026, 11, 23)
BASE_URL = "https://crm.example.test"


@pytest.fixture
def crm(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, SmtpServer]]:
    with running_server(FaultySink()) as smtp:
        monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("CRM_SMTP_HOST", smtp.host)
        monkeypatch.setenv("CRM_SMTP_PORT", str(smtp.port))
        monkeypatch.setenv("CRM_SMTP_TLS", "none")
        monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
        monkeypatch.setenv("CRM_PUBLIC_BASE_URL", BASE_URL)
        reset_settings_cache()
        yield engine, smtp
        dispose_shared_engines()
        reset_settings_cache()


def test_not_solved_in_the_care_email_becomes_a_call_in_the_next_digest(
    crm: tuple[Engine, SmtpServer],
) -> None:
    engine, smtp = crm
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        customer = make_customer(session, org, abc_class=AbcClass.C)
        # A recorded issue: the care email asks whether it was solved (solved / not solved).
        # Recorded through the lifecycle (events, targets), closed a month before.
        add_sla_policies(session)
        received = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
        complaint_id = open_complaint(
            session,
            Intake("CP-LOOP-1", customer.id, None, "充值到账", Severity.NORMAL, received),
        ).id
        customer_id, manager_id = customer.id, org.account_manager.id
    for hours, step in enumerate(
        (Transition.ACK, Transition.RESOLVE, Transition.VERIFY, Transition.CLOSE), start=1
    ):
        with session_scope(engine) as session:
            apply_event(
                session, complaint_id, step, received + timedelta(hours=hours), None,
                EventSource.CLI,
            )  # fmt: skip

    planned = revisits(as_of=MONDAY)["counts"]
    assert planned["care_emails"] == 1
    delivered = deliver_outbox()["counts"]
    # Just the care email: it completed the revisit, so the manager has nothing due today.
    assert (planned.get("digests", 0), delivered["sent"]) == (0, 1)

    # The link in the email the customer received.
    with session_scope(engine) as session:
        care_message_id = session.scalars(
            select(OutboxMessage.message_id).where(OutboxMessage.kind == "revisit_care")
        ).one()
    [received] = [r for r in smtp.sink.received if r.message_id == care_message_id]
    email = message_from_bytes(received.data or b"", policy=policy.default)
    text = email.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    match = re.search(re.escape(BASE_URL) + r"(/f/[A-Za-z0-9_.-]+)", text)
    assert match is not None
    link = match[1]

    # The customer answers after the email went out (the flows ran on the real clock), so the
    # follow-up falls due on the working day after today (no calendar rows: Monday to Friday).
    answered_at = utcnow()
    due = follow_up_due(answered_at.astimezone(get_settings().tz).date(), WorkCalendar(), ())
    app = create_app(engine, get_settings(), clock=lambda: answered_at)
    with TestClient(app, base_url=BASE_URL) as client:
        assert client.get(link + "?answer=not_solved").status_code == 200
        answered = client.post(
            link,
            content="answer=not_solved&comment=%E8%BF%98%E6%98%AF%E4%B8%8D%E5%AF%B9",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answered.status_code == 200 and due.isoformat() in answered.text

    with session_scope(engine) as session:
        feedback = session.scalars(select(CareFeedback)).one()
        follow_up = session.get(Revisit, feedback.follow_up_revisit_id)
        assert follow_up is not None
        assert (follow_up.status, follow_up.channel, follow_up.due_on, follow_up.assignee_id) == (
            RevisitStatus.OPEN,
            ContactChannel.PHONE,
            due,
            manager_id,
        )
        contact = session.get(ContactHistory, feedback.contact_id)
        assert contact is not None
        assert (contact.customer_id, contact.outcome, contact.notes) == (
            customer_id,
            ContactOutcome.ISSUE_RAISED,
            "customer feedback: not solved\n还是不对",
        )
        # Every problem recorded: the closed complaint the email asked about is reopened.
        reopened = session.get(Complaint, complaint_id)
        assert reopened is not None
        assert (reopened.status, reopened.reopened_count) == (ComplaintStatus.IN_PROGRESS, 1)

    # On that day nothing new is planned for the customer (one open revisit), and the manager's
    # digest lists the call, with the customer's answer as the last contact.
    that_day = revisits(as_of=due)["counts"]
    assert that_day.get("created", 0) == 0 and that_day["digests"] == 1
    with session_scope(engine) as session:
        digest = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.idempotency_key == f"revisit_digest:{due}:staff:{manager_id}"
            )
        ).one()
        [item] = digest.context["items"]
    assert (item["channel"], item["due_date"], item["overdue_days"]) == (
        "phone",
        due.isoformat(),
        0,
    )
    assert item["last_contact_outcome"] == "issue_raised"

    # A re-run for that day adds nothing: no revisit, no second digest.
    again = revisits(as_of=due)["counts"]
    assert again.get("created", 0) == 0
    with session_scope(engine) as session:
        assert len(session.scalars(select(Revisit)).all()) == 2
        assert len(session.scalars(select(OutboxMessage)).all()) == 2
