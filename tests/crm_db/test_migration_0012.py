"""Migration 0012_revisit_capacity: ``revisits.planned_for`` and its index, up and down, on
SQLite and PostgreSQL; existing revisits keep their rows (NULL = planned on their due date)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from crm_db import migrate
from crm_db.session import make_engine


def _columns(engine: object) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("revisits")}  # type: ignore[arg-type]


def _indexes(engine: object) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("revisits")}  # type: ignore[arg-type, misc]


def test_0012_adds_planned_for_and_downgrades(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, "0011_complaint_next_check")
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
    assert "planned_for" not in _columns(engine)
    migrate.upgrade(engine)
    assert "planned_for" in _columns(engine)
    assert "ix_revisits_assignee_planned" in _indexes(engine)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT planned_for FROM revisits")).scalar_one() is None
        conn.execute(text("UPDATE revisits SET planned_for = '2026-11-24'"))
    migrate.downgrade(engine, "0011_complaint_next_check")
    assert "planned_for" not in _columns(engine)
    assert "ix_revisits_assignee_planned" not in _indexes(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM revisits")).scalar_one() == 1
    migrate.upgrade(engine)  # and up again
    assert "planned_for" in _columns(engine)
    engine.dispose()
