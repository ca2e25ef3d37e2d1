"""The monthly survey report end to end (real Prefect runs, SQLite and PostgreSQL): from stored
scores and loop figures of two regions and a month of answers, each region manager's email holds
their region's figures and none of the other region's; the marketing admin and the executive
get the company; the two departments the month's ratings and suggestions, escaped, and no
internal note; the first run after the month queues one email per recipient, later runs
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    AbcClass,
    ContactChannel,
    InvitationStatus,
    ResponseSource,
    StaffRole,
    SurveyKind,
    SurveyTrigger,
)
from crm_db.models import (
    Customer,
    OutboxMessage,
    Revisit,
    SurveyCampaign,
    SurveyInvitation,
    SurveyLoopScore,
    SurveyResponse,
    SurveyScore,
)
from crm_db.session import dispose_shared_engines, session_scope
from flows.registry import FLOWS
from flows.survey_report import survey_report
from tasks.mail.render import RenderedEmail, render_email
from tests.factories import Org, make_customer, make_org, make_staff
from tests.support.outbox_data import TEST_SECRET

NOW = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>排队太久"


@pytest.fixture
def crm(engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
    reset_settings_cache()
    yield engine
    dispose_shared_engines()
    reset_settings_cache()


def _score(period: str, level: str, scope: str, kind: SurveyKind, score: float) -> SurveyScore:
    return SurveyScore(
        period=period, level=level, scope=scope, kind=kind, sent=10, responses=4,
        promoters=0, passives=0, detractors=0, satisfied=0, score=score, response_rate=40.0,
        computed_at=NOW,
    )  # fmt: skip


def _loop(period: str, scope: str, alerts: int, followed_up: int) -> SurveyLoopScore:
    return SurveyLoopScore(
        period=period, level="region", scope=scope, alerts=alerts, followed_up=followed_up,
        told=0, next_answers=0, next_recovered=0, next_promoters=0, next_passives=0,
        next_detractors=0, next_csat_answers=0, next_csat_satisfied=0, computed_at=NOW,
    )  # fmt: skip


def _stored(session: Session, east: Org, west: Org) -> None:
    """Distinct figures per region, so a leak would show: east NPS 41.5 / 12.5 before, west
    -77.7 / -66.6; east's loop 2 of 3 followed up (66.7 %), west's 1 of 7 (14.3 %)."""
    rows = [
        _score(p, "company", "", SurveyKind.NPS, v) for p, v in (("2026Q4", 5.5), ("2026Q3", 1.5))
    ]
    for org, now, before in ((east, 41.5, 12.5), (west, -77.7, -66.6)):
        rows += [
            _score("2026Q4", "region", str(org.region.id), SurveyKind.NPS, now),
            _score("2026Q3", "region", str(org.region.id), SurveyKind.NPS, before),
            _score("2026Q4", "branch", str(org.branch.id), SurveyKind.NPS, now + 0.1),
            _score("2026Q4", "account_manager", str(org.account_manager.id), SurveyKind.NPS,
                   now + 0.2),
        ]  # fmt: skip
    rows.append(_score("2026Q4", "class", "A", SurveyKind.NPS, 33.3))
    session.add_all(rows)
    session.add_all(
        [_loop("2026Q4", str(east.region.id), 3, 2), _loop("2026Q4", str(west.region.id), 7, 1)]
    )


def _answers(session: Session, east: Org) -> None:
    """Two November answers with ratings (product 2 and 4: average 3.0), one with a hostile
    suggestion; an October one (product 5: last month's average); a revisit's internal note."""
    campaign = SurveyCampaign(
        code="nps:2026Q4:A", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC,
        period="2026Q4", abc_class=AbcClass.A,
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    for score, rating, comment, at in (
        (3, 2, HOSTILE, datetime(2026, 11, 20, 2, tzinfo=UTC)),
        (9, 4, None, datetime(2026, 11, 21, 2, tzinfo=UTC)),
        (10, 5, "十月的建议", datetime(2026, 10, 20, 2, tzinfo=UTC)),
    ):
        customer = make_customer(session, east, abc_class=AbcClass.A)
        invitation = SurveyInvitation(
            campaign_id=campaign.id, customer_id=customer.id, kind=SurveyKind.NPS,
            status=InvitationStatus.RESPONDED, created_at=at, sent_at=at, expires_at=at,
        )  # fmt: skip
        session.add(invitation)
        session.flush()
        session.add(
            SurveyResponse(
                invitation_id=invitation.id, score=score, product_rating=rating, comment=comment,
                source=ResponseSource.WEB, responded_at=at, recorded_at=at,
            )
        )  # fmt: skip
    first = session.scalars(select(Customer).order_by(Customer.id)).first()
    assert first is not None
    session.add(
        Revisit(
            customer_id=first.id, abc_class=AbcClass.A, channel=ContactChannel.PHONE,
            due_on=date(2026, 11, 25), notes="INTERNAL-NOTE 客户脾气差",
            customer_summary=None,
        )
    )  # fmt: skip


def _emails(engine: Engine) -> dict[int, RenderedEmail]:
    with session_scope(engine) as session:
        messages = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "survey_report")
        ).all()
        return {
            m.staff_id or 0: render_email(m.kind, m.locale, m.context, base_url="https://x.test/")
            for m in messages
        }


def _all(email: RenderedEmail) -> str:
    return "\n".join((email.subject, email.text, email.html))


def test_each_recipient_gets_their_view_once(crm: Engine) -> None:
    engine = crm
    assert FLOWS["survey_report"] is survey_report
    with session_scope(engine) as session:
        east, west = make_org(session, "EAST"), make_org(session, "WEST")
        # Names no other name contains, so "not in the email" means what it says.
        for org, words in ((east, ("东湖片区", "东湖加油站", "东湖甲经理")),
                           (west, ("西山片区", "西山加油站", "西山乙经理"))):  # fmt: skip
            org.region.name, org.branch.name, org.account_manager.name = words
        session.flush()
        admin = make_staff(session, StaffRole.MARKETING_ADMIN)
        executive = make_staff(session, StaffRole.EXECUTIVE)
        product = make_staff(session, StaffRole.PRODUCT_DEPARTMENT)
        operations = make_staff(session, StaffRole.OPERATIONS_DEPARTMENT)
        make_staff(session, StaffRole.EXECUTIVE, active=False)  # left: nothing
        _stored(session, east, west)
        _answers(session, east)
        ids = {
            "east": east.region_manager.id, "west": west.region_manager.id, "admin": admin.id,
            "executive": executive.id, "product": product.id, "operations": operations.id,
        }  # fmt: skip
        names = {
            "east": (east.region.name, east.branch.name, east.account_manager.name),
            "west": (west.region.name, west.branch.name, west.account_manager.name),
        }

    first = survey_report(as_of=date(2026, 12, 1))["counts"]
    assert (first["queued"], first["region_managers"], first["company"], first["departments"]) == (
        6,
        2,
        2,
        2,
    )
    emails = _emails(engine)
    assert set(emails) == set(ids.values())

    east_mail, west_mail = _all(emails[ids["east"]]), _all(emails[ids["west"]])
    for name in names["east"]:
        assert name in east_mail
    assert "41.5" in east_mail and "12.5" in east_mail and "+29.0" in east_mail
    assert "41.6" in east_mail and "41.7" in east_mail  # its branch and account manager
    assert "66.7" in east_mail  # its loop: 2 of 3 followed up in time
    # Nothing of the other region, nor the company-wide lines, in a region manager's email.
    for leak in (*names["west"], "-77.7", "-66.6", "14.3", "5.5", "33.3", "西山"):
        assert leak not in east_mail, leak
    for leak in (*names["east"], "41.5", "66.7", "5.5", "东湖"):
        assert leak not in west_mail, leak
    assert "-77.7" in west_mail and "14.3" in west_mail

    for who in ("admin", "executive"):
        company = _all(emails[ids[who]])
        for name in (*names["east"], *names["west"]):
            assert name in company
        assert "5.5" in company and "+4.0" in company and "33.3" in company  # company, class
        assert "排队太久" not in company  # the suggestions are the departments'

    for who in ("product", "operations"):
        mail = emails[ids[who]]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;排队太久" in mail.html
        assert "<script>" not in mail.html
        assert "3.0" in mail.text and "5.0" in mail.text  # product average: November, October
        assert "十月的建议" not in _all(mail)  # October's suggestion is not this month's
        assert "INTERNAL-NOTE" not in _all(mail)
        assert "41.5" not in _all(mail)  # no region figures

    again = survey_report(as_of=date(2026, 12, 2))["counts"]
    assert again == {"queued": 0, "already_reported": 1}
    # An explicit month is computed again, but each recipient still has it once.
    forced = survey_report(as_of=date(2026, 12, 2), month="2026-11")["counts"]
    assert forced["queued"] == 0 and forced["already_queued"] == 6
    with session_scope(engine) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key)).all()
    assert len(keys) == 6 and all(k.startswith("survey_report:2026-11:staff:") for k in keys)
