"""Care emails sent by planning itself (``plan_range(..., care_cap_days=...)``), against real
databases: the same outcome as planning followed by ``queue_care_emails``, in one pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

import tasks.revisits.planning
from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, OutboxStatus, RevisitStatus
from crm_db.models import ContactHistory, Customer, OutboxMessage, Revisit, Staff
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.revisits.care_delivery import settle_care_revisits
from tasks.revisits.emails import queue_care_emails
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
from tasks.revisits.rules.planning import DEFAULT_CADENCES, Cadence
from tasks.rules.calendar import WorkCalendar
from tests.factories import (
    deliver_care_emails,
    make_customer,
    make_org,
    queue_earlier_care_email,
)

MONDAY = date(2026, 11, 23)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ctx(engine: Engine, as_of: date) -> PlanningContext:
    return PlanningContext(
        as_of=as_of,
        now=datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        timezone=SHANGHAI,
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


SKIP_KEYS = (
    "care_skipped:no_email",
    "care_skipped:contact_cap",
    "care_skipped:invalid_email",
    "phone_instead:no_email",
    "phone_instead:opted_out",
    "skipped:opted_out",
)


def _plan(engine: Engine, ctx: PlanningContext, cap_days: int = 7) -> Counter[str]:
    totals: Counter[str] = Counter()
    for lo, hi in customer_id_ranges(engine, 2):
        counts = plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False, care_cap_days=cap_days)
        for key in ("created", "care_emails", "due", *SKIP_KEYS):
            totals[key] += counts.total(key)
    return totals


def _seed(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        org = make_org(session)
        ids = {
            "ok": make_customer(session, org, abc_class=AbcClass.C).id,
            "no_email": make_customer(session, org, abc_class=AbcClass.C, email=None).id,
            "capped": make_customer(session, org, abc_class=AbcClass.C).id,
            "opted_out": make_customer(
                session, org, abc_class=AbcClass.C, marketing_opt_out=True
            ).id,
            "visit": make_customer(session, org, abc_class=AbcClass.A).id,
            "manager": org.account_manager.id,
        }
        capped = session.get(Customer, ids["capped"])
        assert capped is not None
        queue_earlier_care_email(
            session,
            capped,
            datetime.combine(MONDAY, datetime.min.time(), tzinfo=UTC) - timedelta(days=2),
        )
    return ids


def test_planning_queues_the_care_email_and_the_250_completes_the_revisit(
    engine: Engine,
) -> None:
    ids = _seed(engine)
    ctx = _ctx(engine, MONDAY)
    counts = _plan(engine, ctx)
    # The opted-out and the address-less customers get a call in place of the email.
    assert (counts["created"], counts["care_emails"]) == (5, 1)
    assert counts["phone_instead:no_email"] == 1 == counts["phone_instead:opted_out"]
    assert counts["care_skipped:contact_cap"] == 1  # an email on a later day
    assert counts["care_skipped:no_email"] == counts["skipped:opted_out"] == 0
    assert counts["care_skipped:invalid_email"] == 0
    with session_scope(engine) as session:
        revisits = {r.customer_id: r for r in session.scalars(select(Revisit))}
        queued = revisits[ids["ok"]]
        # Queued is not done: open, waiting for the relay.
        assert queued.status is RevisitStatus.OPEN and queued.outcome == "email_queued"
        assert queued.completed_at is None and queued.created_at == ctx.now
        assert queued.channel is ContactChannel.EMAIL and queued.assignee_id == ids["manager"]
        for key in ("no_email", "opted_out"):
            assert revisits[ids[key]].channel is ContactChannel.PHONE
        for key in ("no_email", "opted_out", "capped", "visit"):
            assert revisits[ids[key]].status is RevisitStatus.OPEN
            assert revisits[ids[key]].outcome is None
        assert revisits[ids["capped"]].channel is ContactChannel.EMAIL
        assert session.scalar(select(func.count()).select_from(ContactHistory)) == 0
        mail = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("revisit_care:%"))
        ).one()
        assert mail.idempotency_key == f"revisit_care:{ctx.as_of}:customer:{ids['ok']}"
        assert mail.customer_id == ids["ok"] and mail.status is OutboxStatus.PENDING
        assert mail.context["manager_name"] and mail.created_at == ctx.now
        # A reply reaches the account manager, who is active and has an address.
        manager = session.get(Staff, ids["manager"])
        assert manager is not None and mail.context["reply_to"] == manager.email
    # The flow's leftover pass leaves the run's own revisits to planning (which counted them)...
    assert not queue_care_emails(
        engine, ctx, cap_days=7, run_id=None, dry_run=False, created_before=ctx.now
    ).by_region
    # ... and without that limit finds only what planning left open, for the same reasons.
    left = queue_care_emails(engine, ctx, cap_days=7, run_id=None, dry_run=False)
    assert left.total("care_emails") == 0 == left.total("care_skipped:no_email")
    assert left.total("care_skipped:contact_cap") == 1
    # Again the same day: nothing twice.
    assert _plan(engine, ctx)["created"] == 0
    # The relay accepts it an hour later: the revisit is done then, the contact recorded then.
    accepted = ctx.now + timedelta(hours=1)
    deliver_care_emails(engine, accepted)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
        done = session.scalars(select(Revisit).where(Revisit.customer_id == ids["ok"])).one()
        assert done.status is RevisitStatus.DONE and done.outcome == "email_sent"
        assert done.completed_at == accepted
        contact = session.scalars(select(ContactHistory)).one()
        assert (contact.customer_id, contact.staff_id, contact.revisit_id) == (
            ids["ok"],
            ids["manager"],
            done.id,
        )
        assert contact.outcome is ContactOutcome.COMPLETED and contact.occurred_at == accepted
    # Settling again changes nothing.
    assert not settle_care_revisits(engine, now=accepted, dry_run=False).by_region
    # Once the cap has passed, the deferred one goes out from the leftover pass.
    later = _ctx(engine, MONDAY + timedelta(days=6))
    assert (
        queue_care_emails(engine, later, cap_days=7, run_id=None, dry_run=False).total(
            "care_emails"
        )
        == 1
    )


def test_leftover_care_emails_reply_to_the_manager_only_while_reachable(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        reachable = make_customer(session, org, abc_class=AbcClass.C).id
        other = make_org(session)
        other.account_manager.email_undeliverable = True
        bounced = make_customer(session, other, abc_class=AbcClass.C).id
        manager_email = org.account_manager.email
    # Planning without care_cap_days leaves them open; the leftover pass sends them.
    ctx = _ctx(engine, MONDAY)
    for lo, hi in customer_id_ranges(engine, 1):
        plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False, care_cap_days=None)
    assert (
        queue_care_emails(engine, ctx, cap_days=7, run_id=None, dry_run=False).total("care_emails")
        == 2
    )
    with session_scope(engine) as session:
        reply_to = {
            m.customer_id: m.context["reply_to"] for m in session.scalars(select(OutboxMessage))
        }
    assert reply_to == {reachable: manager_email, bounced: None}


def test_a_dry_run_counts_the_emails_and_writes_nothing(engine: Engine) -> None:
    _seed(engine)
    ctx = _ctx(engine, MONDAY)
    totals: Counter[str] = Counter()
    for lo, hi in customer_id_ranges(engine, 100):
        counts = plan_range(engine, ctx, lo, hi, run_id=None, dry_run=True, care_cap_days=7)
        totals.update({k: counts.total(k) for k in ("created", "care_emails")})
    assert (totals["created"], totals["care_emails"]) == (5, 1)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Revisit)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_thirty_days_of_inline_care_emails_keep_the_invariants(engine: Engine) -> None:
    """Email-channel customers on a short cadence: each round is created exactly once and sent
    at most one care email per revisit, never two open revisits, the cap is respected."""
    with session_scope(engine) as session:
        org = make_org(session)
        for i in range(12):
            make_customer(
                session,
                org,
                abc_class=AbcClass.C if i % 3 else AbcClass.A,
                email=None if i == 5 else f"c{i}@example.test",
                first_card_on=MONDAY - timedelta(days=200 + i),
            )
    short = {abc: Cadence(abc, 3, c.channel, 7) for abc, c in DEFAULT_CADENCES.items()}
    start = MONDAY
    for offset in range(30):
        day = start + timedelta(days=offset)
        ctx = replace(_ctx(engine, day), cadences=short)
        for lo, hi in customer_id_ranges(engine, 5):
            plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False, care_cap_days=2)
        queue_care_emails(engine, ctx, cap_days=2, run_id=None, dry_run=False)
        deliver_care_emails(engine, ctx.now)
        with session_scope(engine) as session:
            open_per_customer = Counter(
                session.scalars(
                    select(Revisit.customer_id).where(Revisit.status == RevisitStatus.OPEN)
                )
            )
            assert max(open_per_customer.values(), default=0) <= 1
    with session_scope(engine) as session:
        mails = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "revisit_care")
        ).all()
        keys = [m.idempotency_key for m in mails]
        assert len(keys) == len(set(keys)) > 12
        # Keys are revisit_care:<as_of>:customer:<id>; each run's clock is 01:00 UTC on as_of.
        emailed = {(k.split(":")[1], int(k.rsplit(":", 1)[1])) for k in keys}
        done = {
            r.id: r for r in session.scalars(select(Revisit).where(Revisit.outcome == "email_sent"))
        }
        assert {
            (r.completed_at.date().isoformat(), r.customer_id)
            for r in done.values()
            if r.completed_at is not None
        } == emailed
        assert len(done) == len(emailed)
        contacts = Counter(
            session.scalars(
                select(ContactHistory.revisit_id).where(ContactHistory.revisit_id.is_not(None))
            )
        )
        assert set(contacts) == set(done) and max(contacts.values()) == 1
        # Per customer, consecutive care emails are at least the cap (2 days) apart.
        sent: dict[int, list[datetime]] = {}
        for m in mails:
            assert m.customer_id is not None
            sent.setdefault(m.customer_id, []).append(m.created_at)
        for times in sent.values():
            times.sort()
            assert all(b - a >= timedelta(days=2) for a, b in zip(times, times[1:], strict=False))


def test_a_revisit_another_run_created_meanwhile_is_skipped_with_its_email(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between a range's selection and its insert another run commits a revisit for one of the
    customers (simulated by committing it as the messages are prepared): that customer gets
    no second revisit, no care email and no contact, and the counts say so."""
    ids = _seed(engine)
    rival = {"ok": ids["ok"], "visit": ids["visit"]}
    prepare = tasks.revisits.planning._CareBatch.prepare

    def prepare_while_another_run_commits(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with session_scope(engine) as session:
            for customer_id in rival.values():
                session.add(
                    Revisit(
                        customer_id=customer_id,
                        assignee_id=ids["manager"],
                        abc_class=AbcClass.C,
                        channel=ContactChannel.EMAIL,
                        due_on=MONDAY,
                        status=RevisitStatus.OPEN,
                        created_at=datetime(2026, 11, 23, 0, 30, tzinfo=UTC),
                    )
                )
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(
        tasks.revisits.planning._CareBatch, "prepare", prepare_while_another_run_commits
    )
    ctx = _ctx(engine, MONDAY)
    counts = plan_range(engine, ctx, 1, 10**9, run_id=None, dry_run=False, care_cap_days=7)
    assert (counts.total("created"), counts.total("care_emails")) == (3, 0)
    with session_scope(engine) as session:
        per_customer = Counter(session.scalars(select(Revisit.customer_id)))
        assert set(per_customer.values()) == {1} and len(per_customer) == 5
        ours = session.scalars(select(Revisit).where(Revisit.created_at == ctx.now)).all()
        assert {r.customer_id for r in ours} == {ids["no_email"], ids["capped"], ids["opted_out"]}
        assert session.scalar(select(func.count()).select_from(ContactHistory)) == 0
        care = session.scalars(
            select(OutboxMessage.idempotency_key).where(OutboxMessage.kind == "revisit_care")
        ).all()
        assert care == ["earlier:care"]
