"""``crm db upgrade``: at head it also writes the missing default policies and the calendar's
public holidays, once; a re-run adds nothing and keeps an operator's edits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.models import CalendarDay, PolicySetting
from crm_db.session import make_engine


def test_upgrade_writes_the_defaults_once_and_keeps_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_cli.main import app

    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    reset_settings_cache()
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "empty ->" in first.output and "default policies added:" in first.output
    engine = make_engine(url)
    with Session(engine) as session:
        days = session.scalar(select(func.count()).select_from(CalendarDay))
        assert days and days > 100  # years of holidays from chinese_calendar
        cap = session.get(PolicySetting, "contact.cap_days")
        assert cap is not None
        cap.value = 3
        session.commit()
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0, again.output
    assert "default policies added" not in again.output
    with Session(engine) as session:
        cap = session.get(PolicySetting, "contact.cap_days")
        assert cap is not None and cap.value == 3
    engine.dispose()
