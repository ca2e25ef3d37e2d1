"""Plain factories for the answer tests: a campaign and an invitation as the invitation side
writes them (the token signed by ``tasks.mail.links``, only its hash stored)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from crm_core.signing import token_hash
from crm_db.enums import InvitationStatus, SurveyKind, SurveyTrigger
from crm_db.models import SurveyCampaign, SurveyInvitation, SurveyResponse
from crm_db.session import session_scope
from tasks.mail.links import survey_answer_token
from tests.factories import make_customer, make_org

# The key the web tests' settings sign with (tests/crm_web/factories.py: SIGNING_KEY).
KEY = b"web-test-signing-key-0123456789abcdef"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class InvitationRow:
    invitation_id: int
    customer_id: int
    customer_external_id: str
    campaign_code: str
    token: str
    expires_at: datetime
    account_manager_external_id: str


def make_invitation(
    engine: Engine,
    *,
    now: datetime,
    kind: SurveyKind = SurveyKind.NPS,
    status: InvitationStatus = InvitationStatus.SENT,
    locale: str = "zh-CN",
    created_ago: timedelta = timedelta(days=2),
    valid_for: timedelta = timedelta(days=12),
    key: bytes = KEY,
) -> InvitationRow:
    """One customer (in an org of its own), one campaign of ``kind`` and its invitation, sent
    ``created_ago`` before ``now`` and expiring ``valid_for`` after ``now``."""
    number = next(_numbers)
    created = now - created_ago
    expires = now + valid_for
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, locale=locale)
        campaign = SurveyCampaign(
            code=f"{kind.value}:test:{number}",
            kind=kind,
            trigger=SurveyTrigger.PERIODIC
            if kind is SurveyKind.NPS
            else SurveyTrigger.POST_COMPLAINT,
            period="2026Q4",
            created_at=created,
        )
        session.add(campaign)
        session.flush()
        invitation = SurveyInvitation(
            campaign_id=campaign.id,
            customer_id=customer.id,
            kind=kind,
            token_hash=f"pending-{number}",
            status=status,
            created_at=created,
            sent_at=None if status is InvitationStatus.PENDING else created,
            expires_at=expires,
        )
        session.add(invitation)
        session.flush()
        token = survey_answer_token(invitation.id, key=key, expires_at=expires)
        invitation.token_hash = token_hash(token)
        return InvitationRow(
            invitation.id,
            customer.id,
            customer.external_id,
            campaign.code,
            token,
            expires,
            org.account_manager.external_id,
        )


def responses(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(SurveyResponse)) or 0


def invitation_status(engine: Engine, invitation_id: int) -> InvitationStatus:
    with session_scope(engine) as session:
        return session.execute(
            select(SurveyInvitation.status).where(SurveyInvitation.id == invitation_id)
        ).scalar_one()
