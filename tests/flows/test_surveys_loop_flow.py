"""The surveys flow's detractor loop end to end (real Prefect runs, SQLite and PostgreSQL): an
answer recorded after the first run's start from an A-class detractor gets exactly one alert,
one urgent revisit and one email per recipient (account manager and region manager); a promoter
gets nothing; an answer given before the first run (imported later) is reported, not acted on;
a re-run adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.orm import Session

from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    AbcClass,
    CareAlertKind,
    ContactOutcome,
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
    SurveyLoopScore,
    SurveyPolicy,
    SurveyResponse,
    SurveyScore,
)
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from flows.surveys import surveys
from tasks.revisits.completion import record_outcome
from tasks.surveys.loop_scores import loop_markdown, store_loop_scores
from tests.factories import make_customer, make_org
from tests.support.outbox_data import TEST_SECRET

SH = ZoneInfo("Asia/Shanghai")
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


def test_the_loop_is_measured_and_stored_per_quarter_and_region(crm: Engine) -> None:
    """East's detractor is followed up within the 2 working days (its revisit completed with a
    summary: told the result) and answers 9 to a later survey; West's is never followed up.
    Company: 2 alerts, 50 % in time, 50 % told, next NPS 100 (one promoter) - per region too."""
    engine = crm
    with session_scope(engine) as session:
        east, west = make_org(session, "EAST"), make_org(session, "WEST")
        session.add_all(
            SurveyPolicy(abc_class=abc, period=SurveyPeriod.YEAR, enabled=False) for abc in AbcClass
        )
        a = make_customer(session, east, abc_class=AbcClass.B)
        b = make_customer(session, west, abc_class=AbcClass.B)
        east_id, west_id = str(east.region.id), str(west.region.id)
    surveys(as_of=AS_OF)  # the first run: the loop starts here
    with session_scope(engine) as session:
        first = SurveyCampaign(
            code="nps:2026Q4:B", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC,
            period="2026Q4", abc_class=AbcClass.B,
        )  # fmt: skip
        later = SurveyCampaign(
            code="nps:2026Q4:X", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC,
            period="2026Q4", abc_class=AbcClass.B,
        )  # fmt: skip
        session.add_all([first, later])
        session.flush()
        customers = {c.id: c for c in session.scalars(select(Customer))}
        _answer(session, first, customers[a.id], 2, utcnow())
        _answer(session, first, customers[b.id], 4, utcnow())
    assert surveys(as_of=AS_OF)["counts"]["loop_alerts"] == 2
    with session_scope(engine) as session:
        alert = session.scalars(select(CareAlert).where(CareAlert.customer_id == a.id)).one()
        assert alert.follow_up_due == URGENT and alert.revisit_id is not None
        # Completed the day after (local 24 November): in time; the summary tells the customer.
        record_outcome(
            session,
            alert.revisit_id,
            ContactOutcome.COMPLETED,
            now=datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
            customer_summary="已增加高峰时段收银员。",
        )
        _answer(session, later, session.get(Customer, a.id), 9, utcnow())  # type: ignore[arg-type]

    surveys(as_of=AS_OF)
    with session_scope(engine) as session:
        rows = {
            (r.level, r.scope): r
            for r in session.scalars(
                select(SurveyLoopScore).where(SurveyLoopScore.period == "2026Q4")
            )
        }
        assert set(rows) == {("company", ""), ("region", east_id), ("region", west_id)}
        company = rows[("company", "")]
        assert (company.alerts, company.followed_up, company.told) == (2, 1, 1)
        assert (company.next_answers, company.next_promoters, company.next_recovered) == (1, 1, 1)
        assert (company.followed_up_pct, company.told_pct, company.next_nps) == (50.0, 50.0, 100.0)
        assert company.next_csat is None  # no CSAT next answer: no score, not 0
        e, w = rows[("region", east_id)], rows[("region", west_id)]
        assert (e.alerts, e.followed_up_pct, e.told_pct, e.next_nps) == (1, 100.0, 100.0, 100.0)
        assert (w.alerts, w.followed_up_pct, w.told_pct, w.next_nps) == (1, 0.0, 0.0, None)
        stored = len(rows)
    # The artifact's lines (what the run's description shows), the region by its 片区 name.
    lines = store_loop_scores(
        engine, as_of=AS_OF, now=utcnow(), timezone=SH, run_id=None, dry_run=True
    )
    table = loop_markdown(lines)
    assert "| company 2026Q4 vs 2026Q3 | 2 | 50.0 | no answers | 50.0 | no answers | 100.0 |" in (
        table
    )
    assert "| region WEST 片区 2026Q4 vs 2026Q3 | 1 | 0.0 |" in table
    surveys(as_of=AS_OF)  # a re-run replaces the rows
    assert _count(engine, SurveyLoopScore, SurveyLoopScore.period == "2026Q4") == stored
