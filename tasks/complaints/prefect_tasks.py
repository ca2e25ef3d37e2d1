"""Prefect task of the complaint check: a thin wrapper that opens the shared engine and calls
the IO (``tasks.complaints.checks``). One task per check, never one per complaint."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from crm_db.session import session_factory, shared_engine
from tasks.complaints.checks import CheckOutcome, run_check


# Retries are safe: the tiers a failed attempt claimed were rolled back with its emails, and a
# committed attempt's claims make the retry write nothing.
@task(name="check-complaints", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def check_complaints(now: datetime, run_id: int | None, dry_run: bool) -> CheckOutcome:
    session = session_factory(shared_engine())()
    try:
        return run_check(session, now, run_id=run_id, dry_run=dry_run)
    finally:
        session.close()
