"""A care email completes its revisit when the relay accepts it (250), against a real aiosmtpd
server and the real delivery path; a permanent refusal (5xx) reopens it as a call for the
account manager; a deferral (4xx) leaves it waiting. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, OutboxStatus, RevisitStatus
from crm_db.models import ContactHistory, Customer, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.mail.deliver import deliver_due
from tasks.revisits.care import CARE_FAILED_NOTE
from tasks.revisits.care_delivery import settle_care_revisits
from tasks.revisits.emails import queue_digests
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org
from tests.support.outbox_data import delivery_settings
from tests.support.smtp_servers import FaultySink, running_server

MONDAY = date(2026, 11, 23)


def _ctx(engine: Engine, as_of: date, hours: int = 1) -> PlanningContext:
    return PlanningContext(
        as_of=as_of,
        now=datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hours),
        timezone=ZoneInfo("Asia/Shanghai"),
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


def _link(revisit_id: int, staff_id: int) -> str:
    return f"https://crm.example.test/r/{revisit_id}"


def test_the_250_completes_the_revisit_and_a_5xx_makes_it_a_call(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        customers = {
            key: make_customer(session, org, abc_class=AbcClass.C) for key in ("ok", "bad", "slow")
        }
        ids = {key: c.id for key, c in customers.items()}
        emails = {key: c.email for key, c in customers.items()}
        manager = org.account_manager.id
    ctx = _ctx(engine, MONDAY)
    for lo, hi in customer_id_ranges(engine, 100):
        plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False, care_cap_days=7)

    # Queued, not sent: nothing is complete, nothing is recorded, and the settle step waits.
    assert not settle_care_revisits(engine, now=ctx.now, dry_run=False).by_region
    with session_scope(engine) as session:
        assert {r.outcome for r in session.scalars(select(Revisit))} == {"email_queued"}
        assert session.scalars(select(ContactHistory)).all() == []

    sink = FaultySink()
    assert emails["bad"] and emails["slow"]
    sink.rcpt_replies[emails["bad"].lower()] = "550 5.1.1 <x>: Recipient address rejected"
    sink.rcpt_replies[emails["slow"].lower()] = "450 4.2.0 <x>: Mailbox busy, try later"
    sent_at = ctx.now + timedelta(minutes=5)
    with running_server(sink) as server:
        report = deliver_due(engine, delivery_settings(port=server.port), now=sent_at)
    assert (report.sent, report.failed) == (1, 1)
    assert len(sink.received) == 1

    # Dry run: counted, nothing written.
    dry = settle_care_revisits(engine, now=sent_at, dry_run=True)
    assert (dry.total("care_delivered"), dry.total("care_failed_phone")) == (1, 1)
    with session_scope(engine) as session:
        assert {r.outcome for r in session.scalars(select(Revisit))} == {"email_queued"}

    later = sent_at + timedelta(hours=2)
    counts = settle_care_revisits(engine, now=later, dry_run=False)
    assert (counts.total("care_delivered"), counts.total("care_failed_phone")) == (1, 1)
    with session_scope(engine) as session:
        revisits = {r.customer_id: r for r in session.scalars(select(Revisit))}
        mails = {
            m.customer_id: m
            for m in session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "revisit_care")
            )
        }
        contacts = {c.customer_id: c for c in session.scalars(select(ContactHistory))}
        ok, bad, slow = (revisits[ids[k]] for k in ("ok", "bad", "slow"))
        # 250: done at the relay's acceptance, the contact recorded then (the next cadence
        # counts from it), not when the settle step happened to read it.
        assert mails[ids["ok"]].status is OutboxStatus.SENT
        assert ok.status is RevisitStatus.DONE and ok.outcome == "email_sent"
        assert ok.completed_at == mails[ids["ok"]].sent_at
        assert contacts[ids["ok"]].outcome is ContactOutcome.COMPLETED
        assert contacts[ids["ok"]].occurred_at == ok.completed_at
        assert contacts[ids["ok"]].revisit_id == ok.id
        # 5xx: a call for the account manager, the failed attempt in the customer file, and the
        # address flagged (so the next cadence plans a call straight away).
        assert mails[ids["bad"]].status is OutboxStatus.FAILED
        assert bad.status is RevisitStatus.OPEN and bad.channel is ContactChannel.PHONE
        assert bad.outcome is None and bad.assignee_id == manager
        assert contacts[ids["bad"]].outcome is ContactOutcome.NO_ANSWER
        assert contacts[ids["bad"]].notes == CARE_FAILED_NOTE
        flagged = session.get(Customer, ids["bad"])
        assert flagged is not None and flagged.email_undeliverable
        # 4xx: still waiting for the retry, in nobody's digest yet.
        assert mails[ids["slow"]].status is OutboxStatus.PENDING
        assert slow.status is RevisitStatus.OPEN and slow.outcome == "email_queued"
        assert ids["slow"] not in contacts

    # Again: nothing twice.
    assert not settle_care_revisits(engine, now=later, dry_run=False).by_region
    with session_scope(engine) as session:
        assert len(session.scalars(select(ContactHistory)).all()) == 2

    # The manager's digest lists the call, not the one still waiting for its email.
    digest_ctx = _ctx(engine, MONDAY, hours=4)
    queue_digests(engine, digest_ctx, outcome_url=_link, run_id=None, dry_run=False)
    with session_scope(engine) as session:
        digest = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "revisit_digest")
        ).one()
        listed = {int(re.sub(r"\D", "", i["outcome_url"])) for i in digest.context["items"]}
    assert listed == {bad.id}

    # Waiting for delivery does not escalate; the call escalates as any open revisit does.
    overdue = _ctx(engine, MONDAY + timedelta(days=9))
    escalate_overdue(engine, overdue, outcome_url=_link, run_id=None, dry_run=False)
    with session_scope(engine) as session:
        levels = {r.customer_id: r.escalation_level for r in session.scalars(select(Revisit))}
    assert levels[ids["bad"]] == 1 and levels[ids["slow"]] == 0

    # The retry goes through: the waiting revisit completes at that 250.
    retry_at = later + timedelta(hours=1)
    sink.rcpt_replies.clear()
    with running_server(sink) as server:
        again = deliver_due(engine, delivery_settings(port=server.port), now=retry_at)
    assert again.by_kind["revisit_care"]["sent"] == 1  # (and the digest)
    assert settle_care_revisits(engine, now=retry_at, dry_run=False).total("care_delivered") == 1
    with session_scope(engine) as session:
        done = session.scalars(select(Revisit).where(Revisit.customer_id == ids["slow"])).one()
        retried = session.scalars(
            select(OutboxMessage).where(OutboxMessage.customer_id == ids["slow"])
        ).one()
    assert retried.sent_at is not None and retried.sent_at >= retry_at
    assert done.status is RevisitStatus.DONE and done.completed_at == retried.sent_at
