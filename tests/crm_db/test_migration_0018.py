"""Migration 0018_weekly_forms: the weekly_forms table up and down on SQLite and PostgreSQL;
one form per week and region, never a negative count of prospects."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0018_weekly_forms"
PREVIOUS = "0017_survey_scores"
SETUP = (
    "INSERT INTO regions (id, code, name) VALUES (1, 'R1', '东区片区')",
    "INSERT INTO staff (id, external_id, name, locale, role, active, email_undeliverable) "
    "VALUES (1, 'S1', '王经理', 'zh-CN', 'region_manager', true, false)",
    "INSERT INTO reconciliation_snapshots (id, kind, period_rule, period, period_start, "
    "period_end, target_month, as_of, revision, parameters, created_at) VALUES (1, 'weekly', "
    "'calendar', '2026-W49', '2026-12-01', '2026-12-05', '2026-12', '2026-12-06', 1, '{}', "
    "'2026-12-06 00:00:00')",
)
FORM = (
    "INSERT INTO weekly_forms (week, region_id, snapshot_id, prospects_contacted, obstacles, "
    "next_week_plan, submitted_by_id, first_submitted_at, submitted_at, submissions) VALUES "
    "('2026-W49', 1, 1, {n}, '无', '拜访车队', 1, '2026-12-06 02:00:00', "
    "'2026-12-06 02:00:00', 1)"
)


def test_0018_weekly_forms_up_and_down(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    assert "weekly_forms" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, REVISION)
    with engine.begin() as conn:
        for statement in SETUP:
            conn.execute(text(statement))
        conn.execute(text(FORM.format(n=12)))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(FORM.format(n=3)))  # the same region and week twice
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(FORM.format(n=-1).replace("2026-W49", "2026-W50")))
    migrate.downgrade(engine, PREVIOUS)
    assert "weekly_forms" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "weekly_forms" in inspect(engine).get_table_names()
    engine.dispose()
