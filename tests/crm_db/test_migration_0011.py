"""Migration 0011 adds ``next_check_at`` (open complaints: "check me now") and
``verify_reminded_at``, and downgrades cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect, text

from crm_db import migrate
from crm_db.session import make_engine

HEAD_BEFORE = "0010_owner_changes"
REVISION = "0011_complaint_next_check"


def _seed(conn: object) -> None:
    execute = conn.execute  # type: ignore[attr-defined]
    execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R')"))
    execute(text("INSERT INTO branches (id, code, name, region_id) VALUES (1, 'B1', 'B', 1)"))
    execute(
        text(
            "INSERT INTO customers (id, external_id, name, card_type, branch_id, first_card_on, "
            "email_undeliverable, locale, timezone, marketing_opt_out, survey_opt_out, "
            "abc_pinned, created_at) VALUES (1, 'C1', 'C', 'personal', 1, '2025-01-01', false, "
            "'zh-CN', 'Asia/Shanghai', false, false, false, '2025-01-01 00:00:00')"
        )
    )
    for cid, status in ((1, "in_progress"), (2, "closed"), (3, "new")):
        execute(
            text(
                "INSERT INTO complaints (id, external_id, customer_id, branch_id, category, "
                "severity, status, description, received_at) VALUES "
                f"({cid}, 'K{cid}', 1, 1, 'x', 'normal', '{status}', '', "
                f"'2026-11-30 0{cid}:00:00')"
            )
        )


def test_upgrade_marks_open_complaints_due_and_downgrades(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    try:
        migrate.upgrade(engine, HEAD_BEFORE)
        with engine.begin() as conn:
            _seed(conn)
        migrate.upgrade(engine, REVISION)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, next_check_at IS NOT NULL, verify_reminded_at IS NULL "
                    "FROM complaints ORDER BY id"
                )
            ).all()
            same = conn.execute(
                text("SELECT count(*) FROM complaints WHERE next_check_at = received_at")
            ).scalar()
        assert [tuple(r) for r in rows] == [(1, True, True), (2, False, True), (3, True, True)]
        assert same == 2
        indexes = {i["name"] for i in inspect(engine).get_indexes("complaints")}
        assert {"ix_complaints_next_check_at", "ix_complaints_verify_pending"} <= indexes
        migrate.downgrade(engine, HEAD_BEFORE)
        columns = {c["name"] for c in inspect(engine).get_columns("complaints")}
        assert "next_check_at" not in columns and "verify_reminded_at" not in columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM complaints")).scalar() == 3
        migrate.upgrade(engine, REVISION)  # and up again
    finally:
        engine.dispose()
