"""Migration 0016_survey_answers: the survey_responses columns for ratings, the source
vocabulary, who recorded an answer and when, up and down on SQLite and PostgreSQL; an existing
answer keeps its row (recorded_at = responded_at, an unknown source becomes ``import``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0016_survey_answers"
PREVIOUS = "0015_targets"
NEW_COLUMNS = {"product_rating", "service_rating", "recorded_by_id", "recorded_at"}


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("survey_responses")}


def _seed(conn: Connection) -> None:
    statements = [
        "INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R')",
        "INSERT INTO branches (id, code, name, region_id) VALUES (1, 'B1', 'B', 1)",
        "INSERT INTO customers (id, external_id, name, card_type, branch_id, first_card_on, "
        "email_undeliverable, locale, timezone, marketing_opt_out, survey_opt_out, abc_pinned, "
        "created_at) VALUES (1, 'C1', 'C', 'personal', 1, '2025-01-01', false, 'zh-CN', "
        "'Asia/Shanghai', false, false, false, '2025-01-01 00:00:00')",
        "INSERT INTO survey_campaigns (id, code, kind, trigger, period, created_at) VALUES "
        "(1, 'nps:2026Q4:A', 'nps', 'periodic', '2026Q4', '2026-10-01 00:00:00')",
        "INSERT INTO survey_invitations (id, campaign_id, customer_id, kind, token_hash, status, "
        "created_at, expires_at) VALUES (1, 1, 1, 'nps', 'h1', 'responded', "
        "'2026-10-01 00:00:00', '2026-10-15 00:00:00')",
        "INSERT INTO survey_responses (id, invitation_id, score, comment, source, responded_at) "
        "VALUES (1, 1, 9, 'ok', 'email', '2026-10-02 03:00:00')",
    ]
    for statement in statements:
        conn.execute(text(statement))


def test_0016_adds_answer_columns_and_downgrades(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    with engine.begin() as conn:
        _seed(conn)
    assert not NEW_COLUMNS & _columns(engine)
    migrate.upgrade(engine, REVISION)
    assert _columns(engine) >= NEW_COLUMNS
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT source, recorded_at, responded_at, product_rating FROM survey_responses")
        ).one()
    assert row[0] == "import"
    assert row[1] == row[2] and row[3] is None
    for bad in ("product_rating = 6", "service_rating = 0", "source = 'email'"):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(f"UPDATE survey_responses SET {bad}"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE survey_responses SET product_rating = 5, service_rating = 1"))
    migrate.downgrade(engine, PREVIOUS)
    assert not NEW_COLUMNS & _columns(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT score FROM survey_responses")).scalar_one() == 9
    migrate.upgrade(engine)  # and up again
    assert _columns(engine) >= NEW_COLUMNS
    engine.dispose()
