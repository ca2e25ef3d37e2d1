"""The surveys flow end to end: real Prefect runs on a real database (SQLite and PostgreSQL).

One simulated fortnight: the first run invites exactly the customers whose wave day has come
(computed here from the pure spreading rule), skips the others by reason, and sends the
post-complaint survey instead of the periodic one; a re-run the same day writes nothing; five
days later the unanswered get their one reminder (the answered one does not); fifteen days
later the first day's invitations expire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    AbcClass,
    ComplaintStatus,
    InvitationStatus,
    Severity,
    SurveyKind,
    SurveyPeriod,
    SurveyTrigger,
)
from crm_db.models import (
    Complaint,
    FlowRun,
    OutboxMessage,
    SurveyCampaign,
    SurveyInvitation,
    SurveyPolicy,
    SurveyResponse,
)
from crm_db.session import dispose_shared_engines, session_scope
from flows.surveys import surveys
from tasks.rules.calendar import WorkCalendar
from tasks.surveys.rules.periods import period_of, spread_day, working_days
from tests.factories import make_customer, make_org, queue_earlier_care_email

AS_OF = date(2026, 11, 23)  # a Monday
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PINNED = {"abc_pinned": True, "abc_pinned_reason": "test"}
WAVE_START = date(2026, 10, 1)


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _due_by(customer_id: int, day: date) -> bool:
    """The pure rule: is the customer's day in the A wave (started 1 Oct) on or before ``day``?"""
    period = period_of(day, SurveyPeriod.QUARTER)
    return spread_day(customer_id, working_days(period, WorkCalendar(), WAVE_START)) <= day


def _seed(engine: Engine) -> dict[str, int]:
    """40 A-class customers in a wave that started on 1 Oct; four due ones each meet one skip
    reason; one due customer's complaint was resolved 3 working days before (post-complaint
    first). Returns the ids by role."""
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        session.add(
            SurveyCampaign(
                code="nps:2026Q4:A",
                kind=SurveyKind.NPS,
                trigger=SurveyTrigger.PERIODIC,
                period="2026Q4",
                abc_class=AbcClass.A,
                starts_on=WAVE_START,
            )
        )
        # B and C switched off (only A customers here anyway).
        session.add_all(
            SurveyPolicy(abc_class=abc, period=SurveyPeriod.YEAR, enabled=False)
            for abc in (AbcClass.B, AbcClass.C)
        )
        customers = [make_customer(session, org, abc_class=AbcClass.A, **PINNED) for _ in range(40)]
        due = [c for c in customers if _due_by(c.id, AS_OF)]
        assert len(due) >= 12, "the spreading rule should make over a quarter of them due"
        opted, no_email, capped, fatigued, complained = due[:5]
        opted.survey_opt_out = True
        no_email.email = None
        queue_earlier_care_email(session, capped, NOW - timedelta(days=2))
        old = SurveyCampaign(
            code="nps:2026Q3:A",
            kind=SurveyKind.NPS,
            trigger=SurveyTrigger.PERIODIC,
            period="2026Q3",
            abc_class=AbcClass.A,
        )
        session.add(old)
        session.flush()
        session.add(
            SurveyInvitation(
                campaign_id=old.id,
                customer_id=fatigued.id,
                kind=SurveyKind.NPS,
                status=InvitationStatus.RESPONDED,
                created_at=NOW - timedelta(days=60),
                expires_at=NOW - timedelta(days=46),
            )
        )
        complaint = Complaint(
            external_id="CP-1",
            customer_id=complained.id,
            branch_id=org.branch.id,
            category="充值到账",
            severity=Severity.NORMAL,
            status=ComplaintStatus.RESOLVED,
            received_at=NOW - timedelta(days=8),
            resolved_at=datetime(2026, 11, 18, 6, 0, tzinfo=UTC),  # Wed -> due Mon 23 Nov
        )
        session.add(complaint)
        session.flush()
        return {
            "due": len(due),
            "complaint": complaint.id,
            "complained": complained.id,
            "first_invited": due[5].id,
        }


def _count(engine: Engine, model: type, *where: object) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


def _invitations(engine: Engine) -> int:
    return _count(engine, SurveyInvitation, SurveyInvitation.run_id.is_not(None))


def test_a_fortnight_of_survey_runs(crm_db: Engine) -> None:
    seeded = _seed(crm_db)
    first = surveys(as_of=AS_OF, now=NOW)
    counts = first["counts"]
    # Everyone due but the four skipped; the complained customer gets the CSAT instead of NPS.
    assert counts["invited"] == seeded["due"] - 4 + 0
    assert counts["invited_nps_A"] == seeded["due"] - 5
    assert counts["invited_csat_A"] == 1
    assert counts["skipped_opted_out"] == 1
    assert counts["skipped_no_email"] == 1
    assert counts["skipped_contact_cap"] == 1
    assert counts["skipped_survey_fatigue"] == 1
    assert counts["skipped_post_complaint_first"] == 1
    assert counts["emails"] == counts["invited"]
    invited = _invitations(crm_db)
    assert invited == counts["invited"]
    assert _count(crm_db, OutboxMessage, OutboxMessage.kind == "survey_invitation") == invited
    with session_scope(crm_db) as session:
        csat = session.scalars(
            select(SurveyInvitation).where(SurveyInvitation.complaint_id == seeded["complaint"])
        ).one()
        assert (csat.kind, csat.customer_id) == (SurveyKind.CSAT, seeded["complained"])
        assert csat.due_on == AS_OF
        ledger = session.get(FlowRun, first["ledger_run_id"])
        assert ledger is not None and ledger.counts["invited"] == invited

    # The same day again: nothing twice; the held-back customers are counted again.
    again = surveys(as_of=AS_OF, now=NOW + timedelta(hours=3))
    assert again["counts"].get("invited", 0) == 0
    assert again["counts"]["skipped_opted_out"] == 1
    assert _invitations(crm_db) == invited
    assert _count(crm_db, OutboxMessage, OutboxMessage.kind == "survey_invitation") == invited

    # Five days later: one reminder to each unanswered invitation of the first day.
    with session_scope(crm_db) as session:
        answered = session.scalars(
            select(SurveyInvitation).where(SurveyInvitation.customer_id == seeded["first_invited"])
        ).one()
        answered.status = InvitationStatus.RESPONDED
        session.add(SurveyResponse(invitation_id=answered.id, score=9, responded_at=NOW))
    later = surveys(as_of=AS_OF + timedelta(days=5), now=NOW + timedelta(days=5))
    assert later["counts"]["reminded"] == invited - 1
    reminders = _count(crm_db, OutboxMessage, OutboxMessage.kind == "survey_reminder")
    assert reminders == invited - 1
    surveys(as_of=AS_OF + timedelta(days=5), now=NOW + timedelta(days=5, hours=1))
    assert _count(crm_db, OutboxMessage, OutboxMessage.kind == "survey_reminder") == reminders

    # Fifteen days later the first day's unanswered invitations have expired.
    end = surveys(as_of=AS_OF + timedelta(days=15), now=NOW + timedelta(days=15))
    assert end["counts"]["expired"] == invited - 1
    assert (
        _count(
            crm_db,
            SurveyInvitation,
            SurveyInvitation.status == InvitationStatus.EXPIRED,
            SurveyInvitation.created_at == NOW,
        )
        == invited - 1
    )
