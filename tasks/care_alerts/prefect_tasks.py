"""The Prefect tasks of the care alerts (and only those): the churn check of a whole run."""

from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from crm_core.settings import get_settings
from crm_db.session import session_scope, shared_engine
from crm_db.types import utcnow
from tasks.care_alerts.alerts import AlertCounts, load_policy
from tasks.care_alerts.churn import check_churn_range, churn_ranges, notify_pending
from tasks.common.directory import load_directory


@task(name="check-churn", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def check_churn_task(
    as_of: date, run_id: int | None, dry_run: bool, range_size: int
) -> AlertCounts:
    # One task for the whole set: ranges commit as they go, and the alerts' unique keys make a
    # retry finish what is left without raising anything twice.
    engine = shared_engine()
    now = utcnow()
    directory = load_directory(engine)
    with session_scope(engine) as session:
        policy = load_policy(session)
    timezone = get_settings().tz
    counts = AlertCounts()
    for lo, hi in churn_ranges(engine, range_size):
        counts.merge(
            check_churn_range(
                engine,
                lo,
                hi,
                as_of=as_of,
                now=now,
                timezone=timezone,
                directory=directory,
                policy=policy,
                run_id=run_id,
                dry_run=dry_run,
            )
        )
    if not dry_run:
        counts.emails = notify_pending(
            engine,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
        )
    counts.alert_ids.clear()  # counts travel between tasks, not ids of every row
    return counts


__all__ = ["check_churn_task"]
