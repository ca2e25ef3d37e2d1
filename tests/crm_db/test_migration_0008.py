"""Migration 0008 carries existing complaints over: targets copied, due times computed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.defaults import ensure_default_policies
from crm_db.session import make_engine, session_scope

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _seed_0006(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine, "0006")
    with engine.begin() as conn:
        # The 0006 schema in SQL (the models are at head). Policy rows as the old defaults were.
        conn.execute(
            text(
                "INSERT INTO business_calendars (id, code, name, timezone, work_start, work_end, "
                "working_weekdays) VALUES (1, 'CN', 'CN', 'Asia/Shanghai', '09:00:00', "
                "'18:00:00', '12345')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sla_policies (id, code, severity, abc_class, first_response_minutes,"
                " resolution_minutes, calendar_id, warn_pct, branch_pct, region_pct, "
                "executive_pct) VALUES (1, 'normal', 'normal', NULL, 540, 1620, 1, 80, 100, 150, "
                "200), (2, 'critical', 'critical', NULL, 120, 1440, NULL, 80, 100, 150, 200)"
            )
        )
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
        # Received Monday 2026-11-30 09:00 Shanghai (01:00 UTC), paused 2 clock hours.
        conn.execute(
            text(
                "INSERT INTO complaints (id, external_id, customer_id, branch_id, category, "
                "severity, status, sla_policy_id, escalation_level, description, received_at, "
                "paused_seconds) VALUES (1, 'K1', 1, 1, 'x', 'normal', 'in_progress', NULL, 0, "
                "'', '2026-11-30 01:00:00', 7200)"
            )
        )
        for i, (at, frm, to) in enumerate(
            [
                ("2026-11-30 01:00:00", None, "new"),
                ("2026-11-30 02:00:00", "new", "in_progress"),
                ("2026-11-30 03:00:00", "in_progress", "resolved"),
                ("2026-11-30 04:00:00", "resolved", "in_progress"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO complaint_events (id, complaint_id, at, from_status, to_status) "
                    "VALUES (:i, 1, :at, :f, :t)"
                ),
                {"i": i + 1, "at": at, "f": frm, "t": to},
            )
    engine.dispose()


def test_0009_copies_targets_and_computes_due_times_and_downgrades(sqlite_url: str) -> None:
    _seed_0006(sqlite_url)
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine, "0008")
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT sla_policy_id, first_response_minutes, resolution_minutes, assignee_pct,"
                " paused_business_minutes, reopened_count, first_response_due_at, "
                "resolution_due_at FROM complaints"
            )
        ).one()
        policies = dict(
            conn.execute(text("SELECT code, first_response_minutes FROM sla_policies")).all()
        )
        resolution = dict(
            conn.execute(text("SELECT code, resolution_minutes FROM sla_policies")).all()
        )
        recorded = conn.execute(
            text("SELECT count(*) FROM complaint_events WHERE recorded_at = at")
        )
        assert recorded.scalar_one() == 4
    # Business first response (540 = one working day) became 24 clock hours; 24x7 resolution
    # (1440 clock minutes) became one working day.
    assert policies == {"normal": 1440, "critical": 120}
    assert resolution == {"normal": 1620, "critical": 540}
    assert tuple(row[:6]) == (1, 1440, 1620, 100, 120, 1)
    assert str(row[6]).startswith("2026-12-01 01:00:00")  # received + 24 h
    # 1620 + 120 business minutes from Mon 09:00 Shanghai: 3 days of 540 = Wed 18:00, then
    # 120 more: Thu 11:00 Shanghai = 03:00 UTC.
    assert str(row[7]).startswith("2026-12-03 03:00:00")
    migrate.downgrade(engine, "0006")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT paused_seconds FROM complaints")).scalar_one() == 7200
        back = dict(
            conn.execute(text("SELECT code, first_response_minutes FROM sla_policies")).all()
        )
        assert back == {"normal": 540, "critical": 120}
    engine.dispose()


def test_classless_policy_lookup_is_unique_and_thresholds_increase(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=NOW)
    insert = (
        "INSERT INTO sla_policies (code, severity, abc_class, first_response_minutes, "
        "resolution_minutes, warn_pct, assignee_pct, branch_pct, region_pct, executive_pct, "
        "notify_executive_at_intake) VALUES (:code, 'low', NULL, 60, 60, :warn, 100, 100, 150, "
        "200, false)"
    )
    with pytest.raises(IntegrityError, match="UNIQUE"), engine.begin() as conn:
        conn.execute(text(insert), {"code": "low-again", "warn": 80})
    with pytest.raises(IntegrityError, match="CHECK"), engine.begin() as conn:
        conn.execute(text("DELETE FROM sla_policies WHERE code = 'low'"))
        conn.execute(text(insert), {"code": "low-bad", "warn": 120})
    engine.dispose()
