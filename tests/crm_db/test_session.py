"""Engine set-up per backend (crm_db.session)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text


@pytest.mark.postgres
def test_postgres_connections_run_without_jit_even_after_a_rollback(pg_engine: Engine) -> None:
    # Checked on pooled connections after rollbacks: the pool's reset-on-return rolls back, and
    # a SET inside an uncommitted transaction would be undone by it.
    for _ in range(3):
        with pg_engine.connect() as conn:
            assert conn.execute(text("SHOW jit")).scalar() == "off"
            conn.rollback()
            assert conn.execute(text("SHOW jit")).scalar() == "off"
