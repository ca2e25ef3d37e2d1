"""Escalation, care emails and digests of the revisits flow, against real databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, ContactChannel, RevisitStatus, StaffRole
from crm_db.models import ContactHistory, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.common.run_context import RunCounts
from tasks.revisits.emails import (
    digest_batches,
    queue_care_emails,
    queue_digest_batch,
    queue_digests,
)
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import Org, make_customer, make_org, make_staff

AS_OF = date(2026, 11, 23)


def _ctx(engine: Engine, as_of: date = AS_OF) -> PlanningContext:
    return PlanningContext(
        as_of=as_of,
        now=datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        timezone=ZoneInfo("Asia/Shanghai"),
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


def _link(revisit_id: int, staff_id: int) -> str:
    return f"https://crm.example.test/r/{revisit_id}-{staff_id}"


def _revisit(session, org: Org, due_on: date, channel=ContactChannel.VISIT, **customer):  # type: ignore[no-untyped-def]
    customer_row = make_customer(session, org, abc_class=AbcClass.A, **customer)
    revisit = Revisit(
        customer_id=customer_row.id,
        assignee_id=org.account_manager.id,
        abc_class=AbcClass.A,
        channel=channel,
        due_on=due_on,
    )
    session.add(revisit)
    session.flush()
    return revisit


def _outbox(engine: Engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            )
        )


def _escalate(engine: Engine, as_of: date, dry_run: bool = False):  # type: ignore[no-untyped-def]
    return escalate_overdue(
        engine,
        _ctx(engine, as_of),
        outcome_url=_link,
        run_id=None,
        dry_run=dry_run,
    )


def test_each_tier_is_escalated_once(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "NORTH")
        late = _revisit(session, org, AS_OF - timedelta(days=7))
        later = _revisit(session, org, AS_OF - timedelta(days=14))
        fine = _revisit(session, org, AS_OF - timedelta(days=3))
        ids = (late.id, later.id, fine.id, org.branch_manager.id, org.region_manager.id)
    counts = _escalate(engine, AS_OF)
    assert counts.total("escalated:branch") == 2 and counts.total("escalated:region") == 1
    with session_scope(engine) as session:
        levels = {r.id: r.escalation_level for r in session.scalars(select(Revisit))}
    assert levels == {ids[0]: 1, ids[1]: 2, ids[2]: 0}
    mails = _outbox(engine, "revisit_escalation")
    assert {(m.staff_id, m.context["level"], len(m.context["items"])) for m in mails} == {
        (ids[3], "branch", 2),
        (ids[4], "region", 1),
    }
    # The same day again, and the next day: no tier twice, no email twice.
    assert _escalate(engine, AS_OF).total("escalated:branch") == 0
    assert _escalate(engine, AS_OF + timedelta(days=1)).total("escalated:branch") == 0
    assert len(_outbox(engine, "revisit_escalation")) == 2
    # A week later the first one reaches the region manager.
    assert _escalate(engine, AS_OF + timedelta(days=7)).total("escalated:region") == 1


def test_missing_branch_manager_falls_back_and_dry_run_writes_nothing(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        org.branch_manager.active = False
        _revisit(session, org, AS_OF - timedelta(days=8))
        region_manager = org.region_manager.id
    dry = _escalate(engine, AS_OF, dry_run=True)
    assert dry.total("escalated:branch") == 1 and _outbox(engine, "revisit_escalation") == []
    _escalate(engine, AS_OF)
    (mail,) = _outbox(engine, "revisit_escalation")
    assert mail.staff_id == region_manager and mail.context["level"] == "branch"


def test_a_broken_chain_escalates_to_senior_management_and_records_the_tiers(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        boss = make_staff(session, StaffRole.EXECUTIVE)
        # Both managers gone, and their chain loops: the ladder ends at senior management.
        org.branch_manager.active = False
        org.region_manager.active = False
        org.region_manager.manager_id = org.branch_manager.id
        revisit = _revisit(session, org, AS_OF - timedelta(days=15))
        boss_id, revisit_id = boss.id, revisit.id
    counts = _escalate(engine, AS_OF)
    assert counts.total("escalated:branch") == 1 and counts.total("escalated:region") == 1
    assert {(m.staff_id, m.context["level"]) for m in _outbox(engine, "revisit_escalation")} == {
        (boss_id, "branch"),
        (boss_id, "region"),
    }
    with session_scope(engine) as session:
        stored = session.get(Revisit, revisit_id)
        assert stored is not None and stored.escalation_level == 2
        assert stored.branch_escalated_at == stored.region_escalated_at  # the same run
    assert _escalate(engine, AS_OF + timedelta(days=1)).total("escalated:region") == 0


def test_care_emails_respect_consent_address_and_cap(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "SOUTH")
        ok = _revisit(session, org, AS_OF, ContactChannel.EMAIL)
        no_email = _revisit(session, org, AS_OF, ContactChannel.EMAIL, email=None)
        capped = _revisit(session, org, AS_OF, ContactChannel.EMAIL)
        session.add(
            OutboxMessage(
                idempotency_key="other:1",
                kind="revisit_care",
                recipient_email="x@example.test",
                customer_id=capped.customer_id,
                message_id="<m1@x>",
                created_at=datetime(2026, 11, 20, tzinfo=UTC),
            )
        )
        ids = (ok.id, no_email.id, capped.id)
        ok_customer = ok.customer_id
    counts = queue_care_emails(engine, _ctx(engine), cap_days=7, run_id=None, dry_run=False)
    assert counts.total("care_emails") == 1
    assert counts.total("phone_instead:no_email") == 1  # a call in place of the email
    assert counts.total("care_skipped:no_email") == 0
    assert counts.total("care_skipped:contact_cap") == 1
    with session_scope(engine) as session:
        state = {r.id: (r.status, r.channel, r.outcome) for r in session.scalars(select(Revisit))}
        contacts = session.scalar(select(func.count()).select_from(ContactHistory))
    # Queued is not done: the relay's 250 completes it (test_care_delivery.py).
    assert state == {
        ids[0]: (RevisitStatus.OPEN, ContactChannel.EMAIL, "email_queued"),
        ids[1]: (RevisitStatus.OPEN, ContactChannel.PHONE, None),
        ids[2]: (RevisitStatus.OPEN, ContactChannel.EMAIL, None),
    }
    assert contacts == 0
    assert [m.idempotency_key for m in _outbox(engine, "revisit_care")][-1] == (
        f"revisit_care:{AS_OF}:customer:{ok_customer}"
    )
    again = queue_care_emails(engine, _ctx(engine), cap_days=7, run_id=None, dry_run=False)
    assert again.total("care_emails") == 0
    # Past the cap window the deferred one goes out.
    later = queue_care_emails(
        engine, _ctx(engine, AS_OF + timedelta(days=5)), cap_days=7, run_id=None, dry_run=False
    )
    assert later.total("care_emails") == 1


def test_one_digest_per_manager_with_context(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        _revisit(session, org, AS_OF - timedelta(days=3), phone="13812345678")
        _revisit(session, org, AS_OF)
        _revisit(session, org, AS_OF + timedelta(days=2))  # not yet due
        other = make_org(session)
        other.account_manager.email = None
        _revisit(session, other, AS_OF)

    def digest():  # type: ignore[no-untyped-def]
        return queue_digests(
            engine,
            _ctx(engine),
            outcome_url=_link,
            run_id=None,
            dry_run=False,
        )

    counts = digest()
    assert counts.total("digests") == 1
    assert counts.total("digest_skipped:manager_without_email") == 1
    (mail,) = _outbox(engine, "revisit_digest")
    items = mail.context["items"]
    assert [i["overdue_days"] for i in items] == [3, 0]
    assert items[0]["phone"] == "*******5678"
    assert items[0]["outcome_url"].startswith("https://crm.example.test/r/")
    again = digest()  # a re-run writes nothing and says so: counts are rows written
    assert again.total("digests") == 0 and again.total("digests_already_queued") == 1
    assert len(_outbox(engine, "revisit_digest")) == 1


def test_digest_batches_split_assignees_and_together_send_each_digest_once(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        orgs = [make_org(session) for _ in range(3)]
        for n, org in enumerate(orgs):
            for _ in range(n + 1):
                _revisit(session, org, AS_OF)
    batches = digest_batches(engine, AS_OF, max_rows=2)
    # Three assignees with 1, 2 and 3 due revisits: no batch mixes past two rows unless alone.
    assert sorted(len(b) for b in batches) == [1, 1, 1]
    assert sorted(a for b in batches for a in b) == sorted(o.account_manager.id for o in orgs)
    counts = RunCounts()
    for batch in batches:
        counts.merge(
            queue_digest_batch(
                engine,
                _ctx(engine),
                batch,
                outcome_url=_link,
                run_id=None,
                dry_run=False,
            )
        )
    assert counts.total("digests") == 3
    mails = _outbox(engine, "revisit_digest")
    assert sorted(len(m.context["items"]) for m in mails) == [1, 2, 3]


def test_bad_contact_data_is_reported_not_fatal(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        _revisit(session, org, AS_OF, ContactChannel.EMAIL, email="bad address@example.test")
        _revisit(session, org, AS_OF, ContactChannel.EMAIL, name="Eve\r\nBcc: x@evil.test")
        good = _revisit(session, org, AS_OF, ContactChannel.EMAIL)
        broken = make_org(session)
        broken.account_manager.email = "not-an-address"
        _revisit(session, broken, AS_OF)
        good_customer = good.customer_id
    care = queue_care_emails(engine, _ctx(engine), cap_days=7, run_id=None, dry_run=False)
    # An address the outbox would refuse: a call instead.
    assert care.total("phone_instead:invalid_email") == 2 and care.total("care_emails") == 1
    assert [m.idempotency_key for m in _outbox(engine, "revisit_care")] == [
        f"revisit_care:{AS_OF}:customer:{good_customer}"
    ]
    digests = queue_digests(
        engine,
        _ctx(engine),
        outcome_url=_link,
        run_id=None,
        dry_run=False,
    )
    assert digests.total("digest_skipped:manager_without_email") == 1
    assert digests.total("digests") == 1
