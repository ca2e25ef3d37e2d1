"""Benchmark: the target reconciliation step against a bare SQL GROUP BY script.

    python benchmarks/targets.py [--transactions 10000000] [--database-url URL] [--rounds 4]

Builds its own synthetic CRM: 20 regions, 400 branches, 2,000 account managers (plus a region
manager per region and a marketing admin), ``--transactions // 20`` customers (first cards over
the two years before, three card types, 2 % handed to another account manager during the
month), ``--transactions`` purchases and recharges from October 2025 to November 2026, and a
target version with revenue, volume and new-customer targets per branch and region.

Timed, alternating for ``--rounds`` rounds (each side first in turn):

- baseline: a bare SQL script - the same three GROUP BYs (transactions; new cards per card
  type; first recharges of new cards) for the month, the month before and the same month last
  year, by home branch and *current* account manager (no assignment history), sums in Python;
- reconcile: ``tasks.targets.reconciliation.compute`` for the monthly run of 1 December 2026
  (policies, calendar, targets, owner spans from ``customer_owner_changes`` in a temporary
  table, the same GROUP BYs joined with them, roll-ups and the rules for every member).

Both must agree on every branch's and the company's actuals (branch credit does not depend on
the owner). Then, once, the reports are timed: every region manager's and the company's report
composed (each view's chart and XLSX built), rendered, and every view's files written under
var/reports/. ``ratio`` = the slowest round's reconcile / baseline
(target <= 1.5). The last line is
``RESULT ratio=… reconcile_s=… baseline_s=… reports_s=… peak_rss_mb=…``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, print_result, say  # noqa: E402

REGIONS, BRANCHES, MANAGERS = 20, 400, 2_000
AS_OF = date(2026, 12, 1)
FIRST_DAY, LAST_DAY = date(2025, 10, 1), date(2026, 11, 30)
CHUNK = 200_000
ZONE = ZoneInfo("Asia/Shanghai")
CARD_TYPES = ("personal", "company", "fleet")
SPANS = (
    (date(2026, 11, 1), date(2026, 11, 30)),
    (date(2026, 10, 1), date(2026, 10, 31)),
    (date(2025, 11, 1), date(2025, 11, 30)),
)


def build_dataset(url: str, transactions: int, seed: int) -> None:
    from crm_db import migrate
    from crm_db.bulk import driver_date, driver_timestamp, insert_rows
    from crm_db.defaults import ensure_default_policies
    from crm_db.session import make_engine, session_scope

    rng = np.random.default_rng(seed)
    engine = make_engine(url)
    migrate.upgrade(engine)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=datetime(2026, 11, 1, tzinfo=UTC))
    customers = max(1_000, transactions // 20)
    with engine.begin() as conn:
        d = conn.dialect.name
        insert_rows(
            conn,
            "regions",
            ("id", "code", "name"),
            [(r, f"R{r:02d}", f"片区{r:02d}") for r in range(1, REGIONS + 1)],
        )
        insert_rows(
            conn,
            "branches",
            ("id", "code", "name", "region_id"),
            [
                (b, f"B{b:03d}", f"油站{b:03d}", (b - 1) % REGIONS + 1)
                for b in range(1, BRANCHES + 1)
            ],
        )
        staff: list[tuple[Any, ...]] = [
            (
                s,
                f"S{s}",
                f"客户经理{s}",
                f"am{s}@example.test",
                "account_manager",
                (s - 1) % BRANCHES + 1,
                None,
            )
            for s in range(1, MANAGERS + 1)
        ]
        staff += [
            (
                MANAGERS + r,
                f"RM{r}",
                f"片区经理{r}",
                f"rm{r}@example.test",
                "region_manager",
                None,
                r,
            )
            for r in range(1, REGIONS + 1)
        ]
        admin = MANAGERS + REGIONS + 1
        staff.append((admin, "MA1", "营销管理岗", "ma@example.test", "marketing_admin", None, None))
        insert_rows(
            conn,
            "staff",
            (
                "id",
                "external_id",
                "name",
                "email",
                "role",
                "branch_id",
                "region_id",
                "email_undeliverable",
                "locale",
                "active",
            ),
            [(*row, False, "zh-CN", True) for row in staff],
        )
        for r in range(1, REGIONS + 1):
            conn.exec_driver_sql(
                f"UPDATE regions SET manager_id = {MANAGERS + r} WHERE id = {r}"  # noqa: S608
            )
        branch = rng.integers(1, BRANCHES + 1, customers)
        manager = (branch - 1) + BRANCHES * rng.integers(0, MANAGERS // BRANCHES, customers) + 1
        first_card = rng.integers(
            date(2024, 12, 1).toordinal(), LAST_DAY.toordinal() + 1, customers
        )
        card = rng.integers(0, 3, customers)
        created = driver_timestamp(datetime(2026, 11, 1, tzinfo=UTC), d)
        rows: list[tuple[Any, ...]] = [
            (
                i + 1,
                f"C{i + 1}",
                f"客户{i + 1}",
                CARD_TYPES[card[i]],
                int(branch[i]),
                int(manager[i]),
                driver_date(date.fromordinal(int(first_card[i])), d),
                False,
                "zh-CN",
                "Asia/Shanghai",
                False,
                False,
                False,
                created,
            )
            for i in range(customers)
        ]
        insert_rows(
            conn,
            "customers",
            (
                "id",
                "external_id",
                "name",
                "card_type",
                "branch_id",
                "account_manager_id",
                "first_card_on",
                "email_undeliverable",
                "locale",
                "timezone",
                "marketing_opt_out",
                "survey_opt_out",
                "abc_pinned",
                "created_at",
            ),
            rows,
        )
        moved = rng.choice(customers, size=customers // 50, replace=False)
        changes = []
        for n, i in enumerate(moved.tolist()):
            day = date(2026, 11, 1) + timedelta(days=int(rng.integers(0, 30)))
            at = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE).astimezone(UTC)
            new_owner = int(manager[i]) % MANAGERS + 1
            changes.append(
                (n + 1, i + 1, int(manager[i]), new_owner, driver_timestamp(at, d), "cli", "bench")
            )
        insert_rows(
            conn,
            "customer_owner_changes",
            ("id", "customer_id", "from_staff_id", "to_staff_id", "changed_at", "source", "reason"),
            changes,
        )
        conn.exec_driver_sql(
            "UPDATE customers SET account_manager_id = (SELECT c.to_staff_id FROM "
            "customer_owner_changes c WHERE c.customer_id = customers.id) WHERE id IN "
            "(SELECT customer_id FROM customer_owner_changes)"
        )
        days = np.arange(FIRST_DAY.toordinal(), LAST_DAY.toordinal() + 1)
        day_text = [driver_date(date.fromordinal(int(o)), d) for o in days]
        for start in range(0, transactions, CHUNK):
            n = min(CHUNK, transactions - start)
            who = rng.integers(0, customers, n)
            recharge = rng.random(n) < 0.3
            fen = np.where(
                recharge, rng.integers(100, 500, n) * 10_000, rng.integers(5_000, 80_000, n)
            )
            ml = np.where(recharge, 0, fen * 1000 // 750)
            when = rng.integers(0, len(days), n)
            insert_rows(
                conn,
                "transactions",
                ("customer_id", "branch_id", "kind", "amount_fen", "volume_ml", "occurred_on"),
                [
                    (
                        int(who[k]) + 1,
                        int(branch[who[k]]),
                        "recharge" if recharge[k] else "purchase",
                        int(fen[k]),
                        int(ml[k]),
                        day_text[when[k]],
                    )
                    for k in range(n)
                ],
            )
        insert_rows(
            conn,
            "target_versions",
            ("id", "created_at", "created_by", "source"),
            [(1, created, "benchmark", "import")],
        )
        per_branch = max(1, transactions // BRANCHES // 14)
        targets = []
        for b in range(1, BRANCHES + 1):
            targets += [
                (1, "2026-11", "branch", b, "revenue_fen", per_branch * 30_000),
                (1, "2026-11", "branch", b, "volume_ml", per_branch * 40_000),
                (1, "2026-11", "branch", b, "new_customers_fleet", 3),
            ]
        for r in range(1, REGIONS + 1):
            targets.append((1, "2026-11", "region", r, "revenue_fen", per_branch * 600_000))
        insert_rows(
            conn,
            "targets",
            ("version_id", "period", "scope", "scope_id", "metric", "value"),
            targets,
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


BASELINE_SQL = (
    """
SELECT c.branch_id, c.account_manager_id,
       SUM(CASE WHEN t.kind = 'purchase' THEN t.volume_ml ELSE 0 END),
       SUM(CASE WHEN t.kind = 'purchase' THEN t.amount_fen ELSE 0 END),
       SUM(CASE WHEN t.kind = 'recharge' THEN t.amount_fen ELSE 0 END),
       SUM(CASE WHEN t.kind = 'purchase' AND c.first_card_on >= :year THEN t.volume_ml ELSE 0 END)
  FROM transactions t JOIN customers c ON c.id = t.customer_id
 WHERE t.occurred_on >= :start AND t.occurred_on <= :end
 GROUP BY c.branch_id, c.account_manager_id
""",
    """
SELECT branch_id, account_manager_id, card_type, COUNT(*) FROM customers
 WHERE first_card_on >= :start AND first_card_on <= :end
 GROUP BY branch_id, account_manager_id, card_type
""",
    """
SELECT c.branch_id, c.account_manager_id, SUM(t.amount_fen)
  FROM customers c JOIN transactions t ON t.id = (
       SELECT t2.id FROM transactions t2 WHERE t2.customer_id = c.id AND t2.kind = 'recharge'
        ORDER BY t2.occurred_on, t2.id LIMIT 1)
 WHERE c.first_card_on >= :start AND c.first_card_on <= :end AND t.occurred_on <= :end
 GROUP BY c.branch_id, c.account_manager_id
""",
)


def baseline(engine: Any) -> tuple[float, dict[tuple[int, int, str], int]]:
    """Per span and branch (0: the company), the summed metrics."""
    from sqlalchemy import text

    t0 = time.perf_counter()
    totals: defaultdict[tuple[int, int, str], int] = defaultdict(int)
    with engine.connect() as conn:
        for n, (start, end) in enumerate(SPANS):
            params = {"start": start, "end": end, "year": date(start.year, 1, 1)}
            for branch, _, *values in conn.execute(text(BASELINE_SQL[0]), params):
                for metric, value in zip(
                    ("volume_ml", "revenue_fen", "recharge_fen", "new_customer_volume_ml"),
                    values,
                    strict=True,
                ):
                    totals[(n, branch, metric)] += int(value or 0)
                    totals[(n, 0, metric)] += int(value or 0)
            for branch, _, card, count in conn.execute(text(BASELINE_SQL[1]), params):
                totals[(n, branch, f"new_customers_{card}")] += int(count)
                totals[(n, 0, f"new_customers_{card}")] += int(count)
            for branch, _, value in conn.execute(text(BASELINE_SQL[2]), params):
                totals[(n, branch, "first_recharge_fen")] += int(value or 0)
                totals[(n, 0, "first_recharge_fen")] += int(value or 0)
    return time.perf_counter() - t0, {k: v for k, v in totals.items() if v}


def reconcile(engine: Any) -> tuple[float, Any]:
    from tasks.targets.reconciliation import compute
    from tasks.targets.rules.plan import RunKind

    t0 = time.perf_counter()
    result = compute(engine, RunKind.MONTHLY, AS_OF, ZONE)
    return time.perf_counter() - t0, result


def _compare(result: Any, expected: dict[tuple[int, int, str], int]) -> None:
    from crm_db.enums import TargetScope

    found: dict[tuple[int, int, str], int] = {}
    for row in result.rows:
        if row.scope in (TargetScope.BRANCH, TargetScope.COMPANY):
            for n, value in enumerate((row.actual, row.previous_month, row.previous_year)):
                if value:
                    found[(n, row.scope_id, row.metric.value)] = value
    if found != expected:
        diff = set(found.items()) ^ set(expected.items())
        raise SystemExit(f"reconcile and baseline disagree on {len(diff)} figures")


def reports(engine: Any, result: Any) -> tuple[float, float, int, int]:
    """Every report composed (a chart and an XLSX per view and locale), rendered, and every
    view's files written under var/reports/ (as a run does after its snapshot)."""
    from tasks.mail.render import render_email
    from tasks.targets.reports import build_reports, reports_folder, write_report_files

    t0, cpu0 = time.perf_counter(), time.process_time()
    with engine.connect() as conn:
        built = build_reports(
            conn, result, revision=1, resend=False, company_name="CRM", run_id=None
        )
    for message in built.messages:
        render_email(message.kind, message.locale, message.context)
    write_report_files(built.files, reports_folder(result, 1))
    return (
        time.perf_counter() - t0,
        time.process_time() - cpu0,
        len(built.messages),
        len(built.files),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument(
        "--database-url", default=None, help="an EMPTY scratch database (default: temp SQLite)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-targets-"))
    url = args.database_url or f"sqlite:///{workdir / 'crm.sqlite3'}"
    os.environ["CRM_VAR_DIR"] = str(workdir)
    os.environ["CRM_DATABASE_URL"] = url
    from crm_db.session import make_engine

    say(f"building {args.transactions:,} transactions on {url.split(':', 1)[0]} ...")
    t0 = time.perf_counter()
    build_dataset(url, args.transactions, args.seed)
    say(f"  built in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(url)
    worst = (0.0, 0.0, 0.0)  # ratio, reconcile, baseline
    result = None
    for round_no in range(args.rounds):
        if round_no % 2 == 0:
            base_s, expected = baseline(engine)
            rec_s, result = reconcile(engine)
        else:
            rec_s, result = reconcile(engine)
            base_s, expected = baseline(engine)
        _compare(result, expected)
        ratio = rec_s / base_s if base_s else float("inf")
        worst = max(worst, (ratio, rec_s, base_s), key=lambda w: w[1])
        say(
            f"round {round_no + 1}: baseline {base_s:.3f} s, reconcile {rec_s:.3f} s "
            f"(ratio {ratio:.2f}); {len(result.rows):,} rows, same branch and company actuals"
        )
    reports_s, reports_cpu_s, count, files = reports(engine, result)
    say(
        f"reports: {count} composed (charts and XLSX built) and rendered, {files} files "
        f"written, in {reports_s:.3f} s ({reports_cpu_s:.3f} s of this process's CPU: on a "
        "loaded machine the wall time is mostly waiting)"
    )
    ratio, rec_s, base_s = worst
    say(f"slowest reconcile {rec_s:.3f} s, its round's baseline {base_s:.3f} s (target <= 1.5x)")
    print_result(
        ratio=ratio,
        reconcile_s=rec_s,
        baseline_s=base_s,
        reports_s=reports_s,
        reports_cpu_s=reports_cpu_s,
        peak_rss_mb=peak_rss_mb(),
    )


if __name__ == "__main__":
    main()
