"""``crm demo answers`` on SQLite and PostgreSQL: open invitations (sent or reminded, not
expired, unanswered) are answered through the answer page's recording code - source web,
the invitation responded - and nothing else is touched; a second call finds nothing open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.enums import InvitationStatus, ResponseSource, SurveyKind, SurveyTrigger
from crm_db.models import SurveyCampaign, SurveyInvitation, SurveyResponse
from crm_db.session import session_scope
from tasks.surveys.demo_answers import answer_open_invitations
from tests.factories import make_customer, make_org

NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)


def _invitations(engine: Engine, now: datetime = NOW) -> dict[str, int]:
    with session_scope(engine) as session:
        org = make_org(session)
        campaign = SurveyCampaign(
            code="nps:2026Q4:A", kind=SurveyKind.NPS, trigger=SurveyTrigger.PERIODIC,
            period="2026Q4",
        )  # fmt: skip
        session.add(campaign)
        session.flush()
        ids = {}
        for name, status, expires in (
            ("sent", InvitationStatus.SENT, now + timedelta(days=10)),
            ("reminded", InvitationStatus.REMINDED, now + timedelta(days=2)),
            ("expired", InvitationStatus.SENT, now - timedelta(seconds=1)),  # flow lags
            ("pending", InvitationStatus.PENDING, now + timedelta(days=10)),
        ):
            invitation = SurveyInvitation(
                campaign_id=campaign.id, customer_id=make_customer(session, org).id,
                kind=SurveyKind.NPS, status=status, created_at=now - timedelta(days=3),
                sent_at=now - timedelta(days=3), expires_at=expires,
            )  # fmt: skip
            session.add(invitation)
            session.flush()
            ids[name] = invitation.id
    return ids


def test_every_open_invitation_is_answered_once(engine: Engine) -> None:
    ids = _invitations(engine)
    result = answer_open_invitations(engine, share=1.0, seed=42, now=NOW)
    assert result.open == 2 and sum(result.answered.values()) == 2 and result.refused == 0
    with session_scope(engine) as session:
        answered = {r.invitation_id: r for r in session.scalars(select(SurveyResponse)).all()}
        assert set(answered) == {ids["sent"], ids["reminded"]}
        assert {r.source for r in answered.values()} == {ResponseSource.WEB}
        assert all(0 <= r.score <= 10 for r in answered.values())
        statuses = dict(
            session.execute(select(SurveyInvitation.id, SurveyInvitation.status)).tuples().all()
        )
        assert statuses[ids["sent"]] is InvitationStatus.RESPONDED
        assert statuses[ids["expired"]] is InvitationStatus.SENT
        assert statuses[ids["pending"]] is InvitationStatus.PENDING
    again = answer_open_invitations(engine, share=1.0, seed=42, now=NOW)
    assert again.open == 0 and not again.answered


def test_the_cli_answers_a_share(
    sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _invitations(sqlite_engine, datetime.now(UTC))  # the command answers at the real now
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    reset_settings_cache()
    from crm_cli.main import app

    result = CliRunner().invoke(app, ["demo", "answers", "--share", "1"])
    assert result.exit_code == 0, result.output
    assert "answered 2 of 2 open invitations (nps 2;" in result.output
    again = CliRunner().invoke(app, ["demo", "answers", "--share", "1"])
    assert "answered 0 of 0 open invitations" in again.output
    reset_settings_cache()
