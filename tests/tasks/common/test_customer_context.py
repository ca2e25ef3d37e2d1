from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from crm_db.enums import (
    ComplaintStatus,
    ContactChannel,
    ContactOutcome,
    Severity,
    SurveyKind,
    SurveyTrigger,
)
from crm_db.models import (
    Complaint,
    ContactHistory,
    SurveyCampaign,
    SurveyInvitation,
    SurveyResponse,
)
from crm_db.session import session_scope
from tasks.common.customer_context import load_customer_context, trend_pct
from tests.factories import make_customer, make_org, make_purchase

AS_OF = date(2026, 11, 23)
T = datetime(2026, 11, 1, 2, tzinfo=UTC)


def test_context_for_a_batch(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        busy = make_customer(session, org)
        quiet = make_customer(session, org)
        for when, outcome in (
            (T.replace(month=9), ContactOutcome.COMPLETED),
            (T, ContactOutcome.NO_ANSWER),
        ):
            session.add(
                ContactHistory(
                    customer_id=busy.id,
                    channel=ContactChannel.PHONE,
                    outcome=outcome,
                    occurred_at=when,
                )
            )
        for n, status in enumerate((ComplaintStatus.IN_PROGRESS, ComplaintStatus.CLOSED)):
            session.add(
                Complaint(
                    external_id=f"K{n}",
                    customer_id=busy.id,
                    category="billing",
                    severity=Severity.NORMAL,
                    status=status,
                    description="充值未到账" if n else "",
                    received_at=T.replace(day=1 + n),
                )
            )
        campaign = SurveyCampaign(
            code="nps:2026Q4", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC, period="2026Q4"
        )
        session.add(campaign)
        session.flush()
        invitation = SurveyInvitation(
            campaign_id=campaign.id,
            customer_id=busy.id,
            kind=SurveyKind.NPS,
            token_hash="h" * 64,
            expires_at=T.replace(month=12),
        )
        session.add(invitation)
        session.flush()
        session.add(SurveyResponse(invitation_id=invitation.id, score=6, responded_at=T))
        make_purchase(session, busy, 12_000, date(2026, 10, 1))  # last 90 days
        make_purchase(session, busy, 10_000, date(2026, 7, 1))  # the 90 before
        ids = (busy.id, quiet.id)
    with engine.connect() as conn:
        context = load_customer_context(
            conn, list(ids), as_of=AS_OF, timezone=ZoneInfo("Asia/Shanghai")
        )
    busy_ctx, quiet_ctx = context[ids[0]], context[ids[1]]
    assert busy_ctx.last_contact_date == date(2026, 11, 1)
    assert busy_ctx.last_contact_outcome == "no_answer"
    assert busy_ctx.open_complaints == 1
    # The category, never the description: staff write notes there, and care emails quote it.
    assert busy_ctx.last_issue == "billing"
    assert busy_ctx.last_survey_score == 6
    assert busy_ctx.trend_90d_pct == 20.0
    assert quiet_ctx.last_contact_date is None and quiet_ctx.trend_90d_pct is None
    assert quiet_ctx.open_complaints == 0


def test_trend_pct() -> None:
    assert trend_pct(50, 100) == -50.0
    assert trend_pct(10, 0) is None


def test_last_issue_is_the_customer_title_when_the_complaint_has_one(engine: Engine) -> None:
    with session_scope(engine) as session:
        customer = make_customer(session, make_org(session))
        session.add(
            Complaint(
                external_id="T1",
                customer_id=customer.id,
                category="billing",
                customer_title="加油卡充值后余额未及时到账",
                severity=Severity.NORMAL,
                status=ComplaintStatus.IN_PROGRESS,
                description="客户态度差，已内部记录",  # staff notes: never quoted to the customer
                received_at=T,
            )
        )
        session.flush()
        customer_id = customer.id
    with engine.connect() as conn:
        context = load_customer_context(
            conn, [customer_id], as_of=AS_OF, timezone=ZoneInfo("Asia/Shanghai")
        )
    assert context[customer_id].last_issue == "加油卡充值后余额未及时到账"
