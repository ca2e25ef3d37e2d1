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
