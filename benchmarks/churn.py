"""Benchmark: the churn early warning's detection and alerting on the demo company, against a
bare SQL script.

    python benchmarks/churn.py [--customers 200000] [--database-url URL] [--rounds 3]

Seeds the demo (``crm demo seed``'s data, ~10 transactions per customer, as of 2026-11-23) into a
fresh SQLite file (or the empty, migrated database at ``--database-url``) and classifies it
(``classify_customers``: revisits need a class). Then, alternating for
``--rounds`` rounds:

- baseline: one bare SQL statement over all customers selecting those whose purchases in the
  trailing 90 days are below half of the 90 days before, with no complaint open (what a person
  would write);
- detection: ``tasks.care_alerts.churn.churn_triggers`` over every 20,000-id range (what the
  flow's task reads before it writes).

Both must find the same customers. Then (timed once) the real thing: ``check_churn_range`` over
every range - alerts, urgent revisits, emails - and again for the same day, which must write
nothing. ``ratio`` = best detection / best baseline (target <= 1.5). Last line:
``RESULT customers=… triggers=… detect_s=… baseline_s=… ratio=… raise_s=… rerun_s=…
peak_rss_mb=…``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, print_result, say  # noqa: E402

AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)  # 06:00 in Shanghai

BASELINE_SQL = """
SELECT s.customer_id FROM (
    SELECT customer_id,
           SUM(CASE WHEN occurred_on > :mid THEN amount_fen ELSE 0 END) AS recent,
           SUM(CASE WHEN occurred_on <= :mid THEN amount_fen ELSE 0 END) AS previous
    FROM transactions
    WHERE kind = 'purchase' AND occurred_on > :start AND occurred_on <= :as_of
    GROUP BY customer_id
) s
WHERE s.previous > 0 AND s.recent < s.previous * 0.5
  AND NOT EXISTS (SELECT 1 FROM complaints k WHERE k.customer_id = s.customer_id
                  AND k.status IN ('new', 'acknowledged', 'in_progress', 'waiting_on_customer'))
ORDER BY s.customer_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from sqlalchemy import text

    from crm_db import migrate
    from crm_db.demo import SeedOptions, seed_demo
    from crm_db.session import make_engine, session_scope
    from tasks.care_alerts.alerts import AlertCounts, load_policy
    from tasks.care_alerts.churn import (
        check_churn_range,
        churn_ranges,
        churn_triggers,
        notify_pending,
    )
    from tasks.care_alerts.rules import churn_windows
    from tasks.classification.classify import classify_all
    from tasks.common.directory import load_directory

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'churn.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    say(f"seeding {args.customers:,} customers ...")
    started = time.perf_counter()
    seed_demo(engine, SeedOptions(customers=args.customers, as_of=AS_OF))
    classify_all(engine, as_of=AS_OF, now=NOW, run_id=None, dry_run=False)  # A/B/C
    say(f"  seeded and classified in {time.perf_counter() - started:.1f} s")
    with session_scope(engine) as session:
        policy = load_policy(session)
    windows = churn_windows(AS_OF, policy.churn_window_days)
    params = {"mid": windows.recent_start, "start": windows.previous_start, "as_of": AS_OF}
    ranges = churn_ranges(engine)

    best_base = best_detect = float("inf")
    base_ids: list[int] = []
    detect_ids: list[int] = []
    for round_no in range(args.rounds):
        started = time.perf_counter()
        with engine.connect() as conn:
            base_ids = list(conn.execute(text(BASELINE_SQL), params).scalars())
        base_s = time.perf_counter() - started
        started = time.perf_counter()
        found: list[int] = []
        for lo, hi in ranges:
            triggers, _ = churn_triggers(engine, lo, hi, as_of=AS_OF, policy=policy)
            found += [t.customer_id for t in triggers]
        detect_s = time.perf_counter() - started
        detect_ids = found
        best_base, best_detect = min(best_base, base_s), min(best_detect, detect_s)
        say(f"  round {round_no + 1}: baseline {base_s:.3f} s, detection {detect_s:.3f} s")
    if base_ids != detect_ids:
        raise SystemExit(
            f"detection found {len(detect_ids)} customers, the baseline {len(base_ids)}"
        )

    directory = load_directory(engine)
    zone = ZoneInfo("Asia/Shanghai")

    def raise_all() -> AlertCounts:
        counts = AlertCounts()
        for lo, hi in ranges:
            counts.merge(
                check_churn_range(
                    engine, lo, hi, as_of=AS_OF, now=NOW, timezone=zone,
                    directory=directory, policy=policy, run_id=None, dry_run=False,
                )
            )  # fmt: skip
        counts.emails = notify_pending(
            engine, as_of=AS_OF, now=NOW, timezone=zone, directory=directory, policy=policy,
            run_id=None,
        )  # fmt: skip
        return counts

    started = time.perf_counter()
    first = raise_all()
    raise_s = time.perf_counter() - started
    started = time.perf_counter()
    again = raise_all()
    rerun_s = time.perf_counter() - started
    alerts = sum(first.alerts.values())
    say(
        f"  raised {alerts} alerts, {first.revisits_created} revisits created, "
        f"{first.revisits_updated} made urgent, {first.emails} emails in {raise_s:.2f} s; "
        f"re-run {rerun_s:.2f} s; skipped {dict(first.skipped)}"
    )
    if sum(again.alerts.values()) or again.emails or again.revisits_created:
        raise SystemExit("the re-run wrote something")
    engine.dispose()
    print_result(
        customers=args.customers,
        triggers=len(detect_ids),
        detect_s=best_detect,
        baseline_s=best_base,
        ratio=best_detect / best_base if best_base else 0.0,
        raise_s=raise_s,
        rerun_s=rerun_s,
        peak_rss_mb=peak_rss_mb(),
    )


if __name__ == "__main__":
    main()
