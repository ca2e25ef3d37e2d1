"""Migration 0014_care_alerts: ``care_alerts`` and ``revisits.reason`` / ``customer_summary``,
up and down, on SQLite and PostgreSQL; existing revisits keep their rows (NULL in both)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0014_care_alerts"
PREVIOUS = "0013_survey_invitations"


def _columns(engine: object, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}  # type: ignore[arg-type]


def _tables(engine: object) -> set[str]:
    return set(inspect(engine).get_table_names())  # type: ignore[arg-type]


def test_0014_adds_care_alerts_and_downgrades(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
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
                "INSERT INTO revisits (id, customer_id, abc_class, channel, due_on, status, "
                "needs_reassignment, created_at) VALUES (1, 1, 'A', 'visit', '2026-11-23', "
                "'open', false, '2026-11-23 01:00:00')"
            )
        )
    assert "care_alerts" not in _tables(engine)
    migrate.upgrade(engine, REVISION)
    assert {"reason", "customer_summary"} <= _columns(engine, "revisits")
    insert = text(
        "INSERT INTO care_alerts (key, customer_id, kind, source, as_of, revisit_id, "
        "recipients, details, created_at) VALUES (:key, 1, :kind, 'response:1', '2026-11-23', "
        "1, 1, '{}', '2026-11-23 01:00:00')"
    )
    with engine.begin() as conn:
        assert conn.execute(text("SELECT reason FROM revisits")).scalar_one() is None
        conn.execute(insert, {"key": "survey:response:1", "kind": "detractor"})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the key is unique
        conn.execute(insert, {"key": "survey:response:1", "kind": "detractor"})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # the kind is checked
        conn.execute(insert, {"key": "survey:response:2", "kind": "bogus"})
    migrate.downgrade(engine, PREVIOUS)
    assert "care_alerts" not in _tables(engine)
    assert not {"reason", "customer_summary"} & _columns(engine, "revisits")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM revisits")).scalar_one() == 1
    migrate.upgrade(engine)  # and up again
    assert "care_alerts" in _tables(engine)
    engine.dispose()
