"""The contact policy's facts, read per chunk, and the cross-kind contact cap in both places
that send care emails (planning and ``queue_care_emails``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event

from crm_db.enums import AbcClass, ContactChannel, OutboxStatus, SurveyKind, SurveyTrigger
from crm_db.models import OutboxMessage, Revisit, SurveyCampaign, SurveyInvitation
from crm_db.session import session_scope
from tasks.common.contact_policy import load_contact_facts
from tasks.common.directory import load_directory
from tasks.revisits.emails import queue_care_emails
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org

MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, tzinfo=UTC)


def _ctx(engine: Engine) -> PlanningContext:
    return PlanningContext(
        as_of=MONDAY,
        now=NOW,
        timezone=ZoneInfo("Asia/Shanghai"),
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


def _email(session: Any, customer_id: int, kind: str, days_ago: int, **fields: Any) -> None:
    session.add(
        OutboxMessage(
            idempotency_key=f"{kind}:{customer_id}:{days_ago}",
            kind=kind,
            recipient_email="x@example.test",
            customer_id=customer_id,
            message_id=f"<{kind}.{customer_id}.{days_ago}@x>",
            created_at=NOW - timedelta(days=days_ago),
            **fields,
        )
    )


def test_facts_for_a_chunk_in_one_statement(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        plain = make_customer(session, org)
        surveyed = make_customer(session, org, survey_opt_out=True, phone="13800000000")
        broken = make_customer(session, org, email="not-an-address")
        bounced = make_customer(session, org, email_undeliverable=True)
        _email(session, surveyed.id, "complaint_update", 3)
        _email(session, surveyed.id, "revisit_care", 1, status=OutboxStatus.FAILED)
        campaign = SurveyCampaign(
            code="2026Q4", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC, period="2026Q4"
        )
        session.add(campaign)
        session.flush()
        session.add(
            SurveyInvitation(
                campaign_id=campaign.id,
                customer_id=surveyed.id,
                kind=SurveyKind.NPS,
                token_hash="h" * 64,
                created_at=NOW - timedelta(days=40),
                expires_at=NOW + timedelta(days=10),
            )
        )
        ids = [plain.id, surveyed.id, broken.id, bounced.id]
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    with engine.connect() as conn:
        event.listen(conn, "before_cursor_execute", count)
        facts = load_contact_facts(conn, [*ids, 10**9])
    assert len(statements) == 1
    assert sorted(facts) == sorted(ids)  # the unknown id is left out
    assert facts[ids[0]].last_email_at is None and facts[ids[0]].email_valid
    one = facts[ids[1]]
    # The failed email never reached them: the complaint update is the last one.
    assert one.last_email_at == NOW - timedelta(days=3)
    assert one.last_survey_at == NOW - timedelta(days=40)
    assert one.survey_opt_out and one.has_phone and not one.marketing_opt_out
    assert facts[ids[2]].has_email and not facts[ids[2]].email_valid
    assert not facts[ids[3]].has_email


def test_queue_care_emails_counts_emails_of_every_kind_against_the_cap(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        customers = [make_customer(session, org, abc_class=AbcClass.C) for _ in range(3)]
        for customer in customers:
            session.add(
                Revisit(
                    customer_id=customer.id,
                    assignee_id=org.account_manager.id,
                    abc_class=AbcClass.C,
                    channel=ContactChannel.EMAIL,
                    due_on=MONDAY,
                    created_at=NOW - timedelta(days=1),
                )
            )
        _email(session, customers[0].id, "survey_invitation", 2)  # another flow's email
        _email(session, customers[1].id, "complaint_update", 10)  # outside the cap
    counts = queue_care_emails(engine, _ctx(engine), cap_days=7, run_id=None, dry_run=True)
    assert counts.total("care_skipped:contact_cap") == 1
    assert counts.total("care_emails") == 2


def test_planning_counts_emails_of_every_kind_against_the_cap(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        capped = make_customer(session, org, abc_class=AbcClass.C)
        make_customer(session, org, abc_class=AbcClass.C)
        _email(session, capped.id, "survey_invitation", 2)
    counts = [
        plan_range(engine, _ctx(engine), lo, hi, run_id=None, dry_run=True, care_cap_days=7)
        for lo, hi in customer_id_ranges(engine, 100)
    ]
    assert sum(c.total("care_skipped:contact_cap") for c in counts) == 1
    assert sum(c.total("care_emails") for c in counts) == 1
