"""The surveys flow's detractor loop end to end (real Prefect runs, SQLite and PostgreSQL): an
answer recorded after the first run's start from an A-class detractor gets exactly one alert,
one urgent revisit and one email per recipient (account manager and region manager); a promoter
gets nothing; an answer given before the first run (imported later) is reported, not acted on;
a re-run adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.orm import Session

from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    AbcClass,
    CareAlertKind,
    InvitationStatus,
    ResponseSource,
    RevisitStatus,
    SurveyKind,
    SurveyPeriod,
    SurveyTrigger,
)
from crm_db.models import (
    CareAlert,
    Customer,
    OutboxMessage,
    Revisit,
    SurveyCampaign,
    SurveyInvitation,
    SurveyPolicy,
    SurveyResponse,
    SurveyScore,
)
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from flows.surveys import surveys
from tests.factories import make_customer, make_org
from tests.support.outbox_data import TEST_SECRET

AS_OF = date(2026, 11, 23)  # a Monday
URGENT = date(2026, 11, 25)  # two working days later
SENT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # in 2026Q4, the quarter of AS_OF


@pytest.fixture
def crm(engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
    reset_settings_cache()
    yield engine
    dispose_shared_engines()
    reset_settings_cache()


def _count(engine: Engine, model: type, *where: ColumnElement[bool]) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _answer(
    session: Session, campaign: SurveyCampaign, customer: Customer, score: int, responded: datetime
) -> None:
    invitation = SurveyInvitation(
        campaign_id=campaign.id,
        customer_id=customer.id,
        kind=SurveyKind.NPS,
        status=InvitationStatus.RESPONDED,
        created_at=responded - timedelta(days=1),
        sent_at=SENT,
        expires_at=responded + timedelta(days=13),
    )
    session.add(invitation)
    session.flush()
    session.add(
        SurveyResponse(
            invitation_id=invitation.id,
            score=score,
            comment="<b>太慢</b>" if score <= 6 else None,
            source=ResponseSource.WEB,
            responded_at=responded,
            recorded_at=utcnow(),
        )
    )


def test_detractor_loop_alerts_once_promoter_nothing_old_reported(crm: Engine) -> None:
    engine = crm
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        session.add_all(  # no invitations in this test: the loop only
            SurveyPolicy(abc_class=abc, period=SurveyPeriod.YEAR, enabled=False) for abc in AbcClass
        )
        detractor = make_customer(session, org, abc_class=AbcClass.A)
        promoter = make_customer(session, org, abc_class=AbcClass.A)
        old = make_customer(session, org, abc_class=AbcClass.B)
        am, rm = org.account_manager.id, org.region_manager.id
        detractor_id = detractor.id

    first = surveys(as_of=AS_OF)["counts"]  # the loop's first run: nothing answered yet
    assert first["loop_answers"] == 0 and first["loop_alerts"] == 0

    now = utcnow()
    with session_scope(engine) as session:
        campaign = SurveyCampaign(
            code="nps:2026Q4:A",
            kind=SurveyKind.NPS,
            trigger=SurveyTrigger.PERIODIC,
            period="2026Q4",
            abc_class=AbcClass.A,
        )
        session.add(campaign)
        session.flush()
        by_id = {c.id: c for c in session.scalars(select(Customer))}
        _answer(session, campaign, by_id[detractor.id], 3, now)
        _answer(session, campaign, by_id[promoter.id], 10, now)
        # A paper answer from before the first run, typed in now: reported, not acted on.
        _answer(session, campaign, by_id[old.id], 0, now - timedelta(days=30))

    counts = surveys(as_of=AS_OF)["counts"]
    assert counts["loop_answers"] == 3 and counts["loop_old_answers"] == 1
    assert counts["loop_alerts"] == 1 and counts["loop_triggers_detractor"] == 1
    assert counts["loop_revisits_created"] == 1 and counts["loop_emails"] == 2
    with session_scope(engine) as session:
        alert = session.scalars(select(CareAlert)).one()
        assert (alert.customer_id, alert.kind, alert.score) == (
            detractor_id,
            CareAlertKind.DETRACTOR,
            3,
        )
        assert alert.key.startswith("survey:response:")
        revisit = session.get(Revisit, alert.revisit_id)
        assert revisit is not None
        assert (revisit.status, revisit.due_on) == (RevisitStatus.OPEN, URGENT)
        emails = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "care_alert"))
        assert sorted(e.staff_id or 0 for e in emails) == sorted([am, rm])

    with session_scope(engine) as session:
        stored = {
            (s.level, s.scope, s.kind): s
            for s in session.scalars(select(SurveyScore).where(SurveyScore.period == "2026Q4"))
        }
        company = stored[("company", "", SurveyKind.NPS)]
        # Answers 3, 10 and 0: one promoter, two detractors of three; all three answered.
        assert (company.sent, company.responses, company.promoters, company.detractors) == (
            3,
            3,
            1,
            2,
        )
        assert company.score == -33.3 and company.response_rate == 100.0
        assert stored[("region", str(org.region.id), SurveyKind.NPS)].score == -33.3
        assert stored[("class", "A", SurveyKind.NPS)].score == 0.0  # 10 and 3: a real 0
        assert stored[("class", "B", SurveyKind.NPS)].score == -100.0
        assert ("company", "", SurveyKind.CSAT) not in stored  # no CSAT sent: no row, no 0
        scores_before = len(stored)

    again = surveys(as_of=AS_OF)["counts"]  # re-run: the overlap is skipped by key
    assert again["loop_alerts"] == 0 and again["loop_emails"] == 0
    assert _count(engine, CareAlert) == 1
    assert _count(engine, Revisit) == 1
    assert _count(engine, OutboxMessage, OutboxMessage.kind == "care_alert") == 2
    assert _count(engine, SurveyScore) == scores_before  # replaced, not added
