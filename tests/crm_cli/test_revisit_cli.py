from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.enums import AbcClass, ContactChannel
from crm_db.models import Revisit
from crm_db.session import session_scope
from tests.factories import make_customer, make_org


def test_revisit_done_command(
    sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(sqlite_engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.A)
        revisit = Revisit(
            customer_id=customer.id,
            abc_class=AbcClass.A,
            channel=ContactChannel.VISIT,
            due_on=date(2026, 11, 23),
        )
        session.add(revisit)
        session.flush()
        rid = revisit.id
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    reset_settings_cache()
    from crm_cli.main import app

    runner = CliRunner()
    first = runner.invoke(app, ["revisit", "done", str(rid), "--outcome", "completed"])
    assert first.exit_code == 0, first.output
    assert "done (completed)" in first.output
    again = runner.invoke(app, ["revisit", "done", str(rid), "--outcome", "no_answer"])
    assert again.exit_code == 1 and "already done" in again.output
    missing = runner.invoke(app, ["revisit", "done", "424242"])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_revisit_done_summary_tells_the_customer_of_a_care_alert(
    sqlite_engine: Engine, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select

    from crm_db.enums import CareAlertKind
    from crm_db.models import CareAlert, OutboxMessage

    with session_scope(sqlite_engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.B)
        revisit = Revisit(
            customer_id=customer.id,
            assignee_id=org.account_manager.id,
            abc_class=AbcClass.B,
            channel=ContactChannel.PHONE,
            due_on=date(2026, 11, 25),
            reason="care_alert",
        )
        session.add(revisit)
        session.flush()
        session.add(
            CareAlert(
                key="survey:response:1",
                customer_id=customer.id,
                kind=CareAlertKind.DETRACTOR,
                source="response:1",
                as_of=date(2026, 11, 23),
                score=3,
                revisit_id=revisit.id,
            )
        )
        rid = revisit.id
    monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
    reset_settings_cache()
    from crm_cli.main import app

    done = CliRunner().invoke(
        app,
        ["revisit", "done", str(rid), "--notes", "内部：站长", "--summary", "已增加收银员"],
    )
    assert done.exit_code == 0, done.output
    with session_scope(sqlite_engine) as session:
        [email] = session.scalars(select(OutboxMessage)).all()
        assert email.kind == "care_follow_up_result"
        assert email.context["summary"] == "已增加收银员"
        assert "内部" not in str(email.context)
