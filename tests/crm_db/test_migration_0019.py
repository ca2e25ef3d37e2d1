"""Migration 0019_relay_quota: the relay_quota table up and down on SQLite and PostgreSQL; one
row per relay and window span."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from crm_db import migrate
from crm_db.session import make_engine

REVISION = "0019_relay_quota"
PREVIOUS = "0018_weekly_forms"
ROW = "INSERT INTO relay_quota (relay, span_s, window_start, used) VALUES ('smtp:587', 1, 0, 0)"


def test_0019_relay_quota_up_and_down(empty_database_url: str) -> None:
    engine = make_engine(empty_database_url)
    migrate.upgrade(engine, PREVIOUS)
    assert "relay_quota" not in inspect(engine).get_table_names()
    migrate.upgrade(engine, REVISION)
    with engine.begin() as conn:
        conn.execute(text(ROW))
        conn.execute(text(ROW.replace("1, 0, 0", "3600, 1767000000, 5")))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW))  # the same relay and span twice
    migrate.downgrade(engine, PREVIOUS)
    assert "relay_quota" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "relay_quota" in inspect(engine).get_table_names()
    engine.dispose()
