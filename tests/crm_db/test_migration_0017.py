"""Migration 0017_survey_scores: the survey_scores table up and down on SQLite and PostgreSQL;
one row per period x level x scope x kind."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0017_survey_scores"
PREVIOUS = "0016_survey_answers"
ROW = (
    "INSERT INTO survey_scores (period, level, scope, kind, sent, responses, promoters, "
    "passives, detractors, satisfied, score, response_rate, computed_at) VALUES "
    "('2026Q4', 'region', '1', 'nps', 4, 2, 1, 0, 1, 0, 0.0, 50.0, '2026-12-07 00:00:00')"
)


def test_0017_survey_scores_up_and_down(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    assert "survey_scores" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, REVISION)
    with engine.begin() as conn:
        conn.execute(text(ROW))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW))  # the same group twice
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW.replace("'nps'", "'ces'")))  # not a survey kind
    migrate.downgrade(engine, PREVIOUS)
    assert "survey_scores" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "survey_scores" in inspect(engine).get_table_names()
    engine.dispose()
