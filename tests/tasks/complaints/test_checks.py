"""The complaint check on both backends: each tier once per complaint and target, one email per
recipient per check, re-runs write nothing, inactive staff skipped, the 四个不漏 sweeps; on
PostgreSQL two checks at once never notify a tier twice."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from crm_db.defaults import ensure_default_policies
from crm_db.enums import ComplaintEventKind, EventSource, Severity, StaffRole
from crm_db.models import (
    Complaint,
    ComplaintEscalation,
    ComplaintEvent,
    OutboxMessage,
    Staff,
)
from crm_db.session import session_factory, session_scope
from tasks.complaints.checks import CheckOutcome, run_check
from tasks.complaints.clock import clock_of
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.policies import complaint_hours
from tasks.complaints.rules.escalation import TIER_NAMES, tier_instants
from tasks.complaints.rules.lifecycle import Transition
from tests.factories import Org, make_customer, make_org, make_staff

RECEIVED = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)  # Monday 09:00 Shanghai


@dataclass
class World:
    org: Org
    executive_id: int
    complaint_ids: list[int]


def _world(engine: Engine, complaints: int = 1, *, assigned: bool = True) -> World:
    with session_scope(engine) as session:
        ensure_default_policies(session, now=RECEIVED)
        org = make_org(session)
        executive = make_staff(session, StaffRole.EXECUTIVE)
        org.region_manager.manager_id = executive.id
        customer = make_customer(session, org)
        ids = []
        for n in range(complaints):
            complaint = open_complaint(
                session,
                Intake(
                    external_id=f"K{n}",
                    customer_id=customer.id,
                    branch_id=org.branch.id,
                    category="计量误差",
                    severity=Severity.NORMAL,
                    received_at=RECEIVED,
                    assignee_id=org.account_manager.id if assigned else None,
                ),
            )
            ids.append(complaint.id)
        return World(org, executive.id, ids)


def _check(engine: Engine, at: datetime, **kwargs: object) -> CheckOutcome:
    session = session_factory(engine)()
    try:
        return run_check(session, at, **kwargs)  # type: ignore[arg-type]
    finally:
        session.close()


def _counts(engine: Engine) -> tuple[int, int, int]:
    with session_scope(engine) as session:
        escalations = session.scalar(select(func.count()).select_from(ComplaintEscalation)) or 0
        events = (
            session.scalar(
                select(func.count())
                .select_from(ComplaintEvent)
                .where(ComplaintEvent.kind == ComplaintEventKind.ESCALATION)
            )
            or 0
        )
        outbox = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
        return escalations, events, outbox


def _expected_tiers(engine: Engine, complaint_id: int, at: datetime) -> set[tuple[str, str]]:
    """Every (target, tier) the pure rule says is due by ``at`` for the complaint as stored."""
    with session_scope(engine) as session:
        row = session.get(Complaint, complaint_id)
        assert row is not None
        clock = clock_of(row, complaint_hours(session, row.calendar_id))
        return {
            (target, tier)
            for target in ("first_response", "resolution")
            for tier, due in tier_instants(clock, target).items()
            if due <= at
        }


def _escalations(engine: Engine) -> list[tuple[int, str, str, int | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                ComplaintEscalation.complaint_id,
                ComplaintEscalation.target,
                ComplaintEscalation.tier,
                ComplaintEscalation.notified_staff_id,
            )
        ).tuples()
        return sorted((c, str(t), str(tier), s) for c, t, tier, s in rows)


def _emails(engine: Engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        rows = list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))
        session.expunge_all()
        return rows


def test_each_tier_once_and_a_rerun_writes_nothing(engine: Engine) -> None:
    world = _world(engine)
    [cid] = world.complaint_ids
    early = _check(engine, RECEIVED + timedelta(hours=1))
    assert early.escalations == Counter() and _counts(engine) == (0, 0, 0)
    warn_at = RECEIVED + timedelta(hours=20)  # 80 % of 24 clock hours is 19.2 h
    first = _check(engine, warn_at)
    assert first.escalations == Counter({("first_response", "warning"): 1})
    assert _escalations(engine) == [
        (cid, "first_response", "warning", world.org.account_manager.id)
    ]
    assert _counts(engine) == (1, 1, 1)
    [email] = _emails(engine, "complaint_escalation")
    assert email.staff_id == world.org.account_manager.id
    assert [i["tier"] for i in email.context["items"]] == ["warning"]
    # The same instant again, and a minute later: nothing new anywhere.
    again = _check(engine, warn_at)
    later = _check(engine, warn_at + timedelta(minutes=1))
    assert again.escalations == Counter() and later.escalations == Counter()
    assert _counts(engine) == (1, 1, 1)
    # The next check is only due at the next tier (24 h): nothing is read before.
    assert later.checked == 0
    with session_scope(engine) as session:
        complaint = session.get(Complaint, cid)
        assert complaint is not None
        assert complaint.next_check_at == RECEIVED + timedelta(hours=24)


def test_first_seen_past_several_thresholds_notifies_each_passed_tier_once(
    engine: Engine,
) -> None:
    world = _world(engine, complaints=2)
    at = RECEIVED + timedelta(hours=49)
    outcome = _check(engine, at)
    expected = {
        (cid, t, tier)
        for cid in world.complaint_ids
        for t, tier in _expected_tiers(engine, cid, at)
    }
    got = {(c, t, tier) for c, t, tier, _ in _escalations(engine)}
    assert got == expected
    assert {tier for _, t, tier in got if t == "first_response"} == set(TIER_NAMES)
    # One email per recipient, however many tiers and complaints it reports.
    emails = _emails(engine, "complaint_escalation")
    recipients = [e.staff_id for e in emails]
    assert len(recipients) == len(set(recipients))
    org = world.org
    assert set(recipients) == {
        org.account_manager.id,
        org.branch_manager.id,
        org.region_manager.id,
        world.executive_id,
    }
    reported = Counter(
        (item["reference"], item["target"], item["tier"])
        for e in emails
        for item in e.context["items"]
    )
    assert max(reported.values()) == 1 and len(reported) == len(expected)
    assert outcome.breaches == 2 * len({t for _, t, tier in got if tier == "assignee"})
    before = _counts(engine)
    _check(engine, at)
    assert _counts(engine) == before


def test_inactive_staff_are_skipped_up_the_chain(engine: Engine) -> None:
    world = _world(engine)
    with session_scope(engine) as session:
        manager = session.get(Staff, world.org.branch_manager.id)
        assert manager is not None
        manager.active = False
    _check(engine, RECEIVED + timedelta(hours=25))
    by_tier = {(t, tier): staff for _, t, tier, staff in _escalations(engine)}
    # The branch manager left: the branch tier goes to their manager, the region manager.
    assert by_tier[("first_response", "branch")] == world.org.region_manager.id
    assert by_tier[("first_response", "assignee")] == world.org.account_manager.id
    assert world.org.branch_manager.id not in {
        e.staff_id for e in _emails(engine, "complaint_escalation")
    }
    with session_scope(engine) as session:
        reason = session.scalar(
            select(ComplaintEscalation.reason).where(ComplaintEscalation.tier == "branch")
        )
        assert reason is not None and "skipped" in reason


def test_an_acknowledged_complaint_stops_its_first_response_tiers(engine: Engine) -> None:
    world = _world(engine)
    [cid] = world.complaint_ids
    with session_scope(engine) as session:
        apply_event(
            session, cid, Transition.ACK, RECEIVED + timedelta(hours=2), None, EventSource.CLI
        )
    _check(engine, RECEIVED + timedelta(hours=30))
    assert {t for _, t, _, _ in _escalations(engine)} <= {"resolution"}


def test_unassigned_complaints_are_assigned_by_branch_once(engine: Engine) -> None:
    world = _world(engine, complaints=3, assigned=False)
    outcome = _check(engine, RECEIVED + timedelta(minutes=15))
    assert outcome.assigned == 3
    with session_scope(engine) as session:
        assignees = set(session.scalars(select(Complaint.assignee_id)))
    assert assignees == {world.org.account_manager.id}
    [email] = _emails(engine, "complaint_assigned")
    assert email.staff_id == world.org.account_manager.id and len(email.context["items"]) == 3
    again = _check(engine, RECEIVED + timedelta(minutes=30))
    assert again.assigned == 0 and len(_emails(engine, "complaint_assigned")) == 1


def test_resolved_not_verified_reminds_the_branch_manager_once(engine: Engine) -> None:
    world = _world(engine)
    [cid] = world.complaint_ids
    with session_scope(engine) as session:
        apply_event(
            session, cid, Transition.ACK, RECEIVED + timedelta(hours=1), None, EventSource.CLI
        )
        apply_event(
            session, cid, Transition.RESOLVE, RECEIVED + timedelta(hours=2), None, EventSource.CLI
        )
    # Resolved Monday; 2 working days: reminded from Wednesday (Shanghai), not on Tuesday.
    tuesday = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert _check(engine, tuesday).verify_reminders == 0
    wednesday = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert _check(engine, wednesday).verify_reminders == 1
    [email] = _emails(engine, "complaint_verify_reminder")
    assert email.staff_id == world.org.branch_manager.id
    assert _check(engine, wednesday + timedelta(minutes=15)).verify_reminders == 0
    assert len(_emails(engine, "complaint_verify_reminder")) == 1


def test_a_dry_run_writes_nothing(engine: Engine) -> None:
    _world(engine, assigned=False)
    outcome = _check(engine, RECEIVED + timedelta(hours=49), dry_run=True)
    assert outcome.escalations and outcome.assigned == 1
    assert _counts(engine) == (0, 0, 0)


def test_two_checks_at_once_on_postgres_notify_each_tier_once(pg_engine: Engine) -> None:
    from crm_db.models import PolicySetting

    world = _world(pg_engine, complaints=40)
    with session_scope(pg_engine) as session:  # every tier listed (no cap in this test)
        session.merge(PolicySetting(key="complaint.email_max_items", value=1000))
    at = RECEIVED + timedelta(hours=49)
    barrier = threading.Barrier(2)
    outcomes: list[CheckOutcome] = []
    errors: list[BaseException] = []

    def one(offset: int) -> None:
        try:
            barrier.wait()
            outcomes.append(_check(pg_engine, at + timedelta(seconds=offset)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = {
        (cid, t, tier)
        for cid in world.complaint_ids
        for t, tier in _expected_tiers(pg_engine, cid, at)
    }
    got = [(c, t, tier) for c, t, tier, _ in _escalations(pg_engine)]
    assert sorted(got) == sorted(expected)
    # Both checks together claimed each tier once, and every tier is in exactly one email.
    assert sum(sum(o.escalations.values()) for o in outcomes) == len(expected)
    reported = Counter(
        (item["reference"], item["target"], item["tier"])
        for e in _emails(pg_engine, "complaint_escalation")
        for item in e.context["items"]
    )
    assert len(reported) == len(expected) and set(reported.values()) == {1}


def test_the_escalation_email_prints_status_labels_not_codes() -> None:
    from tasks.mail.kinds import get_kind
    from tasks.mail.render import render_email

    context = dict(get_kind("complaint_escalation").sample_context)
    context["items"] = [dict(context["items"][0], status="waiting_on_customer")]
    zh = render_email("complaint_escalation", "zh-CN", context)
    en = render_email("complaint_escalation", "en", context)
    assert "等待客户回复" in zh.text and "waiting_on_customer" not in zh.text + zh.html
    assert "waiting on the customer" in en.text and "waiting_on_customer" not in en.text + en.html


def test_a_checks_writes_carry_its_instant_not_the_wall_clock(engine: Engine) -> None:
    # A check re-run for an instant a week ago (checked_at): what it records is dated then.
    world = _world(engine, 2, assigned=False)
    at = RECEIVED + timedelta(hours=20, minutes=7, seconds=3)
    outcome = _check(engine, at)
    assert outcome.assigned == 2 and outcome.escalations
    with session_scope(engine) as session:
        events = session.execute(
            select(ComplaintEvent.kind, ComplaintEvent.at, ComplaintEvent.recorded_at).where(
                ComplaintEvent.complaint_id.in_(world.complaint_ids),
                ComplaintEvent.source == EventSource.FLOW,
            )
        ).all()
        kinds = Counter(str(kind) for kind, _, _ in events)
        assert kinds == Counter({"assign": 2, "escalation": 2})
        assert {(a, r) for _, a, r in events} == {(at, at)}
        stamps = set(session.scalars(select(ComplaintEscalation.created_at)))
        queued = set(session.scalars(select(OutboxMessage.created_at)))
        # Each claim points at its own escalation event.
        linked = session.execute(
            select(ComplaintEscalation, ComplaintEvent).join(
                ComplaintEvent, ComplaintEvent.id == ComplaintEscalation.event_id
            )
        ).all()
        assert len(linked) == 2
        for claim, event in linked:
            assert event.complaint_id == claim.complaint_id
            assert event.detail_key == f"{claim.target}:{claim.tier}"
            assert str(event.kind) == "escalation" and event.assignee_id == claim.notified_staff_id
    assert stamps == {at}
    assert queued == {at}


def test_an_escalation_email_lists_at_most_the_cap_and_says_how_many_more(
    engine: Engine,
) -> None:
    from crm_db.models import PolicySetting
    from tasks.mail.render import render_email

    world = _world(engine, 3)
    with session_scope(engine) as session:
        session.merge(PolicySetting(key="complaint.email_max_items", value=2))
    # Past every first-response tier at once: each complaint brings several tiers to its
    # assignee, the cap counts complaints.
    _check(engine, RECEIVED + timedelta(hours=30))
    [email] = [
        e
        for e in _emails(engine, "complaint_escalation")
        if e.staff_id == world.org.account_manager.id
    ]
    listed = {item["reference"] for item in email.context["items"]}
    assert len(listed) == 2 and listed < {"K0", "K1", "K2"}
    assert len(email.context["items"]) > 2  # a listed complaint keeps all its tiers
    assert (email.context["total_count"], email.context["more_count"]) == (3, 1)
    zh = render_email("complaint_escalation", "zh-CN", email.context)
    en = render_email("complaint_escalation", "en", email.context)
    assert "3 件投诉" in zh.subject and "另有 1 件投诉未在此列出" in zh.text
    assert "另有 1 件投诉未在此列出" in zh.html
    assert "1 more complaint not listed here" in en.text and "3 complaints" in en.subject
