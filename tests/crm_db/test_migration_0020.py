"""Migration 0020_survey_loop_scores: the survey_loop_scores table up and down on SQLite and
PostgreSQL; one row per period x level x scope."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0020_survey_loop_scores"
PREVIOUS = "0019_relay_quota"
ROW = (
    "INSERT INTO survey_loop_scores (period, level, scope, alerts, followed_up, told, "
    "next_answers, next_recovered, next_promoters, next_passives, next_detractors, "
    "next_csat_answers, next_csat_satisfied, followed_up_pct, told_pct, next_nps, next_csat, "
    "computed_at) VALUES ('2026Q4', 'region', '1', 4, 3, 2, 1, 1, 1, 0, 0, 0, 0, 75.0, 50.0, "
    "100.0, NULL, '2026-12-07 00:00:00')"
)


def test_0020_survey_loop_scores_up_and_down(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    assert "survey_loop_scores" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, REVISION)
    with engine.begin() as conn:
        conn.execute(text(ROW))
        stored = conn.execute(text("SELECT alerts, next_csat FROM survey_loop_scores")).one()
        assert tuple(stored) == (4, None)  # no CSAT next answers: no score, not 0
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW))  # the same group twice
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW.replace("4, 3, 2,", "NULL, 3, 2,")))  # counts are required
    migrate.downgrade(engine, PREVIOUS)
    assert "survey_loop_scores" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "survey_loop_scores" in inspect(engine).get_table_names()
    engine.dispose()
