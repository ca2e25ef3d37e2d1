"""IO for the churn early warning (流失预警): the customers whose trailing-window spend fell
below the policy share of the window before, with no complaint open, found in SQL one customer
id range at a time, and raised as care alerts (``raise_alerts``: alerts and urgent revisits) in
that range's transaction; then one email per recipient for all of them (``notify_pending``).

Spend is purchases (``kind = 'purchase'``, as revenue everywhere) by transaction date:
``(as_of - 2w, as_of - w]`` against ``(as_of - w, as_of]`` for the window ``w``
(``churn.window_days``, default 90). The database aggregates (``GROUP BY`` on the
``(customer_id, occurred_on)`` index) and filters with the same rule the pure function states
(``HAVING``); the rule (``churn_triggered``) decides again on the returned figures, so the two
can never disagree silently. Never one query per customer.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Engine, Float, bindparam, text

from crm_db.enums import AbcClass, CareAlertKind
from crm_db.session import session_scope
from tasks.care_alerts.alerts import AlertCounts, queue_pending_emails, raise_batch
from tasks.care_alerts.rules import AlertPolicy, Trigger, churn_triggered, churn_windows
from tasks.common.customer_context import OPEN_COMPLAINT_STATES
from tasks.common.directory import Directory
from tasks.common.write_lock import begin_write
from tasks.revisits.planning import customer_id_ranges

CHUNK_CUSTOMERS = 20_000

_OPEN_STATES = ", ".join(f"'{s}'" for s in OPEN_COMPLAINT_STATES)

# Per customer of the range with purchases in either window: both sums, the class, and whether
# a complaint is open. The HAVING is the churn rule (``churn_triggered``) in SQL.
_CANDIDATES = text(
    f"""
    SELECT s.customer_id, s.recent, s.previous, c.abc_class,
           (SELECT COUNT(*) FROM complaints k
            WHERE k.customer_id = s.customer_id AND k.status IN ({_OPEN_STATES})) AS open_count
    FROM (
        SELECT t.customer_id,
               SUM(CASE WHEN t.occurred_on > :mid THEN t.amount_fen ELSE 0 END) AS recent,
               SUM(CASE WHEN t.occurred_on <= :mid THEN t.amount_fen ELSE 0 END) AS previous
        FROM transactions t
        WHERE t.customer_id BETWEEN :lo AND :hi AND t.kind = 'purchase'
          AND t.occurred_on > :start AND t.occurred_on <= :as_of
        GROUP BY t.customer_id
        HAVING SUM(CASE WHEN t.occurred_on <= :mid THEN t.amount_fen ELSE 0 END) > 0
           AND SUM(CASE WHEN t.occurred_on > :mid THEN t.amount_fen ELSE 0 END)
               < SUM(CASE WHEN t.occurred_on <= :mid THEN t.amount_fen ELSE 0 END) * :ratio
    ) s
    JOIN customers c ON c.id = s.customer_id
    ORDER BY s.customer_id
    """
).bindparams(
    bindparam("mid", type_=Date()),
    bindparam("start", type_=Date()),
    bindparam("as_of", type_=Date()),
    bindparam("ratio", type_=Float()),
)


def churn_triggers(
    engine: Engine, lo: int, hi: int, *, as_of: date, policy: AlertPolicy
) -> tuple[list[Trigger], int]:
    """The churn triggers of customers ``lo..hi``, and how many fell but have a complaint open
    (reported as skipped: the complaint is already being handled)."""
    windows = churn_windows(as_of, policy.churn_window_days)
    params = {
        "lo": lo,
        "hi": hi,
        "mid": windows.recent_start,
        "start": windows.previous_start,
        "as_of": as_of,
        "ratio": policy.churn_drop_ratio,
    }
    triggers: list[Trigger] = []
    complaint_open = 0
    with engine.connect() as conn:
        rows = conn.execute(_CANDIDATES, params).tuples().all()
    for customer_id, recent, previous, abc_class, open_count in rows:
        recent, previous = int(recent), int(previous)
        if not churn_triggered(
            recent, previous, drop_ratio=policy.churn_drop_ratio, open_complaints=0
        ):
            continue
        if int(open_count):  # fell, but a complaint is open: already being handled
            complaint_open += 1
            continue
        triggers.append(
            Trigger(
                customer_id=customer_id,
                kind=CareAlertKind.CHURN,
                source=as_of.isoformat(),
                abc_class=None if abc_class is None else AbcClass(abc_class),
                recent_fen=recent,
                previous_fen=previous,
            )
        )
    return triggers, complaint_open


def check_churn_range(
    engine: Engine,
    lo: int,
    hi: int,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None,
    dry_run: bool,
) -> AlertCounts:
    """Find and raise the churn warnings of customers ``lo..hi``, in one write transaction."""
    triggers, complaint_open = churn_triggers(engine, lo, hi, as_of=as_of, policy=policy)
    counts = AlertCounts()
    if complaint_open:
        counts.skipped["complaint_open"] += complaint_open
    if not triggers:
        return counts
    counts.merge(
        raise_batch(
            engine,
            triggers,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
            dry_run=dry_run,
        )
    )
    return counts


def notify_pending(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    directory: Directory,
    policy: AlertPolicy,
    run_id: int | None,
) -> int:
    """After the ranges: one email per recipient listing every alert not yet notified (this
    run's, and any a failed earlier run left), in one transaction; returns the emails queued."""
    with session_scope(engine) as session:
        begin_write(session.connection())
        return queue_pending_emails(
            session,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
        )


def churn_ranges(engine: Engine, size: int = CHUNK_CUSTOMERS) -> list[tuple[int, int]]:
    """The customer id ranges a run checks, ``size`` ids each."""
    return customer_id_ranges(engine, size)


__all__ = [
    "CHUNK_CUSTOMERS",
    "check_churn_range",
    "churn_ranges",
    "churn_triggers",
    "notify_pending",
]
