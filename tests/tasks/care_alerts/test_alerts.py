"""``raise_alerts`` as the surveys flow will call it, and the loop's last step, on SQLite and
PostgreSQL: one alert per response, the urgent revisit through the revisit machinery (a new call,
or the open revisit made urgent), one email per recipient listing their alerts (A class: the region
manager too), nothing twice on a re-run; completing the revisit tells the customer what was done."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, CareAlertKind, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import CareAlert, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.care_alerts.alerts import AlertCounts, raise_alerts
from tasks.care_alerts.metrics import LoopFigures, loop_figures
from tasks.care_alerts.rules import AlertPolicy, Trigger, urgent_due
from tasks.common.directory import load_directory
from tasks.mail.render import render_email
from tasks.revisits.care import CARE_QUEUED
from tasks.revisits.completion import record_outcome
from tasks.revisits.emails import queue_digests
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org

MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")
HOSTILE = '<script>alert("x")</script> 排队太久'
URGENT = urgent_due(MONDAY, WorkCalendar(), 2)  # no calendar rows: Monday to Friday


def _raise(engine: Engine, triggers: list[Trigger]) -> AlertCounts:
    with session_scope(engine) as session:
        return raise_alerts(
            session,
            triggers,
            as_of=MONDAY,
            now=NOW,
            timezone=TZ,
            directory=load_directory(session.connection()),
            policy=AlertPolicy(),
        )


def _emails(engine: Engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        ).all()
        session.expunge_all()
        return list(rows)


def test_detractors_raise_one_alert_revisit_and_email_each_and_nothing_twice(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        vip = make_customer(session, org, abc_class=AbcClass.A)
        other = make_customer(session, org, abc_class=AbcClass.C)
        # ``other`` has an open care-email revisit due in a month, its email queued.
        open_revisit = Revisit(
            customer_id=other.id,
            assignee_id=org.account_manager.id,
            abc_class=AbcClass.C,
            channel=ContactChannel.EMAIL,
            due_on=MONDAY + timedelta(days=30),
            status=RevisitStatus.OPEN,
            outcome=CARE_QUEUED,
        )
        session.add(open_revisit)
        session.flush()
        ids = (vip.id, other.id, open_revisit.id)
        am, rm = org.account_manager.id, org.region_manager.id
    vip_id, other_id, open_id = ids
    triggers = [
        Trigger(vip_id, CareAlertKind.DETRACTOR, "response:1", AbcClass.A, 2, HOSTILE),
        # The same response was low on a rating too: still one alert.
        Trigger(vip_id, CareAlertKind.LOW_RATING, "response:1", AbcClass.A, 1, HOSTILE),
        Trigger(other_id, CareAlertKind.LOW_CSAT, "response:2", AbcClass.C, 1, None),
    ]
    counts = _raise(engine, triggers)
    assert dict(counts.alerts) == {"detractor": 1, "low_csat": 1}
    assert counts.skipped["duplicate"] == 1
    assert (counts.revisits_created, counts.revisits_updated) == (1, 1)
    assert counts.emails == 2  # the account manager (both alerts) and the region manager (A)
    with session_scope(engine) as session:
        new = session.scalars(select(Revisit).where(Revisit.customer_id == vip_id)).one()
        assert (new.status, new.reason, new.channel) == (
            RevisitStatus.OPEN,
            "care_alert",
            ContactChannel.PHONE,
        )
        assert new.due_on == new.planned_for == URGENT and new.assignee_id == am
        made_urgent = session.get(Revisit, open_id)
        assert made_urgent is not None
        assert made_urgent.due_on == URGENT and made_urgent.channel is ContactChannel.PHONE
        assert made_urgent.outcome is None  # its care email's delivery no longer closes it
        assert made_urgent.reason == "care_alert" and "low_csat" in (made_urgent.notes or "")
        assert (
            session.scalar(
                select(func.count()).select_from(Revisit).where(Revisit.customer_id == other_id)
            )
            == 1
        )
        alerts = session.scalars(select(CareAlert).order_by(CareAlert.id)).all()
        assert [(a.key, a.revisit_id) for a in alerts] == [
            ("survey:response:1", new.id),
            ("survey:response:2", open_id),
        ]
    emails = {e.staff_id: e for e in _emails(engine, "care_alert")}
    assert set(emails) == {am, rm}
    assert [i["kind"] for i in emails[am].context["items"]] == ["detractor", "low_csat"]
    assert [i["customer_name"] for i in emails[rm].context["items"]] == [
        emails[am].context["items"][0]["customer_name"]
    ]
    rendered = render_email("care_alert", "zh-CN", emails[am].context)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "排队太久" in rendered.text

    again = _raise(engine, triggers)  # a re-run: nothing new
    assert sum(again.alerts.values()) == 0 and again.skipped["duplicate"] == 3
    assert (again.revisits_created, again.revisits_updated, again.emails) == (0, 0, 0)
    assert len(_emails(engine, "care_alert")) == 2

    # Completing the urgent revisit tells the customer what was done, once, never the notes.
    with session_scope(engine) as session:
        record_outcome(
            session,
            new.id,
            ContactOutcome.COMPLETED,
            now=NOW + timedelta(days=1),
            notes="内部：站长态度问题",
            customer_summary="已为您所在油站增加高峰时段收银员。",
        )
    with session_scope(engine) as session:
        record_outcome(session, new.id, ContactOutcome.COMPLETED, now=NOW + timedelta(days=1))
        record_outcome(session, open_id, ContactOutcome.COMPLETED, now=NOW, notes="内部备注")
    results = {e.customer_id: e for e in _emails(engine, "care_follow_up_result")}
    assert set(results) == {vip_id, other_id}
    assert results[vip_id].context["summary"] == "已为您所在油站增加高峰时段收银员。"
    assert results[other_id].context["summary"] is None  # only notes: the thank-you line
    for email in results.values():
        assert "内部" not in str(email.context)
        context = {**email.context, "unsubscribe_url": "https://crm.example.test/u/t"}
        rendered = render_email(
            "care_follow_up_result", email.locale, context, base_url="https://crm.example.test"
        )
        assert "内部" not in rendered.text
    with session_scope(engine) as session:
        told = session.scalars(select(CareAlert.result_queued_at)).all()
        assert all(t is not None for t in told)
        assert session.scalars(select(CareAlert.follow_up_due)).all() == [URGENT, URGENT]
        # Both completed within the deadline and told; none in an earlier period.
        figures = loop_figures(session, start=MONDAY, end=MONDAY, timezone=TZ)
        assert (figures.alerts, figures.followed_up_in_time, figures.told) == (2, 2, 2)
        assert figures.followed_up_pct == 100.0
        assert loop_figures(
            session, start=date(2026, 1, 1), end=date(2026, 1, 31), timezone=TZ
        ) == (LoopFigures(0, 0, 0))


def test_a_left_account_manager_is_skipped_and_an_opted_out_customer_is_not_told(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.B, survey_opt_out=True)
        unclassified = make_customer(session, org)
        org.account_manager.active = False
        session.flush()
        customer_id, bm, bare_id = customer.id, org.branch_manager.id, unclassified.id
    counts = _raise(
        engine,
        [
            Trigger(customer_id, CareAlertKind.DETRACTOR, "response:9", AbcClass.B, 0, None),
            Trigger(bare_id, CareAlertKind.DETRACTOR, "response:10", None, 1, None),
        ],
    )
    assert counts.emails == 1 and sum(counts.alerts.values()) == 2
    assert counts.skipped["no_class"] == 1  # alerted, but no revisit (planning skips it too)
    [email] = _emails(engine, "care_alert")
    assert email.staff_id == bm and len(email.context["items"]) == 2
    with session_scope(engine) as session:
        revisit = session.scalars(select(Revisit)).one()
        assert revisit.assignee_id == bm and revisit.needs_reassignment
        record_outcome(session, revisit.id, ContactOutcome.COMPLETED, now=NOW)
    assert _emails(engine, "care_follow_up_result") == []


def test_the_next_digest_lists_the_urgent_revisit_before_its_deadline(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.B)
        customer_id, am = customer.id, org.account_manager.id
    _raise(engine, [Trigger(customer_id, CareAlertKind.DETRACTOR, "response:3", AbcClass.B, 4)])
    tuesday = MONDAY + timedelta(days=1)
    ctx = PlanningContext(
        as_of=tuesday,
        now=NOW + timedelta(days=1),
        timezone=TZ,
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )
    counts = queue_digests(
        engine,
        ctx,
        outcome_url=lambda r, s: f"https://crm.example.test/r/{r}-{s}",
        run_id=None,
        dry_run=False,
    )
    assert counts.total("digests") == 1
    [digest] = [e for e in _emails(engine, "revisit_digest") if e.staff_id == am]
    [item] = digest.context["items"]
    assert (item["due_date"], item["overdue_days"]) == (URGENT.isoformat(), 0)
