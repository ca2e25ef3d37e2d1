"""Migration 0015_targets: targets move into version 1 (values kept), the reconciliation tables
are rebuilt with revisions and flags, and the downgrade keeps each key's latest value; on SQLite
and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0015_targets"
PREVIOUS = "0014_care_alerts"


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_0015_versions_targets_and_downgrades(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', 'R')"))
        conn.execute(
            text(
                "INSERT INTO targets (period, scope, scope_id, metric, value) VALUES "
                "('2026-11', 'region', 1, 'revenue_fen', 500), "
                "('2026-11', 'branch', 2, 'volume_ml', 700)"
            )
        )
    migrate.upgrade(engine, REVISION)
    assert {"version_id"} <= _columns(engine, "targets")
    assert {"revision", "target_version_id", "supersedes_id"} <= _columns(
        engine, "reconciliation_snapshots"
    )
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT version_id, scope, metric, value FROM targets ORDER BY value")
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, "region", "revenue_fen", 500),
            (1, "branch", "volume_ml", 700),
        ]
        assert conn.execute(text("SELECT source FROM target_versions")).scalar_one() == "migration"
        # A second version and a company target with a new metric; ids continue past the copies.
        conn.execute(
            text(
                "INSERT INTO target_versions (created_at, created_by, source) "
                "VALUES ('2026-12-01 00:00:00', 'test', 'import')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO targets (version_id, period, scope, scope_id, metric, value) VALUES "
                "(2, '2026-11', 'region', 1, 'revenue_fen', 600), "
                "(2, '2026-11', 'company', 0, 'first_recharge_fen', 9)"
            )
        )
    migrate.downgrade(engine, PREVIOUS)
    assert "version_id" not in _columns(engine, "targets")
    assert "target_versions" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT scope, value FROM targets ORDER BY value")).all()
    assert [tuple(r) for r in kept] == [("region", 600), ("branch", 700)]
    migrate.upgrade(engine)  # and up again
    assert "version_id" in _columns(engine, "targets")
    engine.dispose()
