"""Migration 0013_survey_invitations: ``survey_policies``, the invitation columns (``kind``
backfilled from the campaign), one invitation per complaint, and ``token_hash`` nullable; up and
down on SQLite and PostgreSQL with the existing rows kept."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0013_survey_invitations"
PREVIOUS = "0012_revisit_capacity"


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R')"))
        conn.execute(
            text("INSERT INTO branches (id, code, name, region_id) VALUES (1, 'B1', 'B', 1)")
        )
        conn.execute(
            text(
                "INSERT INTO customers (id, external_id, name, card_type, branch_id, "
                "first_card_on, email_undeliverable, locale, timezone, marketing_opt_out, "
                "survey_opt_out, abc_pinned, created_at) VALUES (1, 'C1', 'C', 'personal', 1, "
                "'2025-01-01', false, 'zh-CN', 'Asia/Shanghai', false, false, false, "
                "'2025-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO survey_campaigns (id, code, kind, trigger, period, created_at) "
                "VALUES (1, 'csat:2026-11', 'csat', 'post_complaint', '2026-11', "
                "'2026-11-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO survey_invitations (id, campaign_id, customer_id, token_hash, "
                "status, created_at, expires_at) VALUES (1, 1, 1, 'h1', 'sent', "
                "'2026-11-02 01:00:00', '2026-11-16 01:00:00')"
            )
        )


def test_0013_adds_survey_policies_and_invitation_columns(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    _seed(engine)
    migrate.upgrade(engine, REVISION)
    assert {"kind", "abc_class", "due_on", "run_id"} <= _columns(engine, "survey_invitations")
    assert {"abc_class", "starts_on"} <= _columns(engine, "survey_campaigns")
    assert {"abc_class", "period", "enabled"} <= _columns(engine, "survey_policies")
    with engine.connect() as conn:
        # Backfilled from the campaign.
        assert conn.execute(text("SELECT kind FROM survey_invitations")).scalar_one() == "csat"
    # token_hash may be NULL now; one invitation per complaint.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO survey_campaigns (id, code, kind, trigger, period, abc_class, "
                "created_at) VALUES (2, 'nps:2026Q4:A', 'nps', 'periodic', '2026Q4', 'A', "
                "'2026-10-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO survey_invitations (id, campaign_id, customer_id, kind, status, "
                "due_on, created_at, expires_at) VALUES (2, 2, 1, 'nps', 'sent', '2026-11-03', "
                "'2026-11-03 01:00:00', '2026-11-17 01:00:00')"
            )
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE survey_invitations SET kind = 'ces' WHERE id = 2"))
    migrate.downgrade(engine, PREVIOUS)
    assert "kind" not in _columns(engine, "survey_invitations")
    assert "survey_policies" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT token_hash FROM survey_invitations ORDER BY id"))
        assert hashes.scalars().all() == ["h1", "signed:2"]
    migrate.upgrade(engine)  # and up again
    assert "kind" in _columns(engine, "survey_invitations")
    engine.dispose()
