"""Two revisits runs for the same date at once, on PostgreSQL (where two runs really overlap:
row locks, not SQLite's single writer): together they create every revisit, email and contact
once - the unique keys decide, not the timing - and count only what they wrote. The same holds
for two fan-out children planning the same span at once (two parents started together)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from crm_core.settings import reset_settings_cache
from crm_db.models import ContactHistory, Customer, OutboxMessage, Revisit
from crm_db.session import dispose_shared_engines, session_scope
from flows.revisits import revisits
from flows.revisits_range import revisits_range
from tests.factories import count_rows, seed_due_customers

pytestmark = pytest.mark.postgres

AS_OF = date(2026, 11, 23)


@pytest.fixture
def crm_pg(
    pg_engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", pg_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    seed_due_customers(pg_engine)
    yield pg_engine
    dispose_shared_engines()


def _twice_at_once(run: Callable[[], Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run), pool.submit(run)]
        return [future.result() for future in futures]


def test_two_runs_at_once_create_everything_once(crm_pg: Engine) -> None:
    first, second = _twice_at_once(lambda: revisits(as_of=AS_OF))

    created = first["counts"].get("created", 0) + second["counts"].get("created", 0)
    assert created == count_rows(crm_pg, Revisit) == 60
    emails = sum(
        run["counts"].get(key, 0)
        for run in (first, second)
        for key in ("care_emails", "digests", "escalation_emails")
    )
    assert emails == count_rows(crm_pg, OutboxMessage) > 0
    with session_scope(crm_pg) as session:
        per_customer = session.execute(
            select(Revisit.customer_id, func.count()).group_by(Revisit.customer_id)
        ).all()
        contacts = session.execute(
            select(ContactHistory.customer_id, func.count()).group_by(ContactHistory.customer_id)
        ).all()
    assert len(per_customer) == 60 and {n for _, n in per_customer} == {1}
    assert {n for _, n in contacts} <= {1}
    # And a third run finds everything done.
    assert revisits(as_of=AS_OF)["counts"].get("created", 0) == 0


def test_two_children_planning_one_span_at_once_create_it_once(crm_pg: Engine) -> None:
    with session_scope(crm_pg) as session:
        lo, hi = session.execute(select(func.min(Customer.id), func.max(Customer.id))).one()
    now = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)

    results = _twice_at_once(
        lambda: revisits_range(as_of=AS_OF, now=now, lo=lo, hi=hi, run_id=None, range_size=1_000)
    )

    created = sum(c.get("created", 0) for result in results for c in result.values())
    assert created == count_rows(crm_pg, Revisit) == 60
    care = sum(c.get("care_emails", 0) for result in results for c in result.values())
    assert care == count_rows(crm_pg, OutboxMessage) > 0
