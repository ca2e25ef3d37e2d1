"""Benchmark: the demo seed against the raw insert floor of the same backend.

    python benchmarks/seed.py [--customers 1000000] [--transactions-per-customer 10]
                              [--database-url URL] [--keep-indexes]

Seeds the demo company (default: into a new temporary SQLite file; for a PostgreSQL URL, into a
throwaway database created on that server and dropped afterwards) and prints rows/s per table
and in total. In the same run it measures the floor: the same number of transaction tuples,
generated beforehand, inserted into a bare table without any index - plain ``sqlite3``
``executemany`` (same pragmas as the seed) or PostgreSQL ``COPY`` - and prints
seed_rows_per_s / baseline_rows_per_s. ``--keep-indexes`` seeds without dropping and rebuilding
the big tables' indexes, to compare the two strategies.

Last line: ``RESULT seconds=… rows_per_s=… baseline_rows_per_s=… ratio=… peak_rss_mb=…``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, print_result, say  # noqa: E402

CHUNK = 500_000  # baseline tuples generated (untimed) and inserted (timed) per round


@contextmanager
def target_database(url: str | None) -> Iterator[str]:
    """The URL to seed: a temp SQLite file, or a throwaway database on a PostgreSQL server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if url is None:
        with tempfile.TemporaryDirectory(prefix="crm-seed-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'crm.sqlite3'}"
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    server = parsed.set(drivername="postgresql+psycopg")
    name = f"crm_seed_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def baseline_chunks(total: int, seed: int) -> Iterator[list[tuple[Any, ...]]]:
    """Transaction-shaped tuples (customer, branch, kind, fen, ml, day), CHUNK at a time."""
    rng = np.random.default_rng(seed)
    days = np.array([f"2026-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)])
    kinds = np.array(["purchase", "recharge"], dtype=object)
    done = 0
    while done < total:
        n = min(CHUNK, total - done)
        customer = np.sort(rng.integers(1, total // 10 + 2, n))
        amount = rng.integers(3_000, 500_000, n)
        yield list(
            zip(
                customer.tolist(),
                rng.integers(1, 41, n).tolist(),
                kinds[(rng.random(n) < 0.2).astype(np.int64)].tolist(),
                amount.tolist(),
                (amount * 130).tolist(),
                days.astype(object)[rng.integers(0, len(days), n)].tolist(),
                strict=True,
            )
        )
        done += n


BARE_COLUMNS = "customer_id, branch_id, kind, amount_fen, volume_ml, occurred_on"


def sqlite_baseline(directory: Path, total: int) -> float:
    """Seconds spent in executemany only (tuple generation is outside the clock)."""
    path = directory / "baseline.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-262144"):
        db.execute(f"PRAGMA {pragma}")
    db.execute(
        "CREATE TABLE bare (id INTEGER PRIMARY KEY, customer_id INTEGER, branch_id INTEGER, "
        "kind TEXT, amount_fen INTEGER, volume_ml INTEGER, occurred_on TEXT)"
    )
    spent = 0.0
    for rows in baseline_chunks(total, 7):
        start = time.perf_counter()
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO bare ({BARE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        spent += time.perf_counter() - start
    db.close()
    path.unlink()
    return spent


def postgres_baseline(url: str, total: int) -> float:
    """Seconds spent in COPY only, into an unindexed table, one transaction."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    spent = 0.0
    with psycopg.connect(dsn) as db:
        db.execute(
            "CREATE TABLE bench_bare (id BIGSERIAL, customer_id INTEGER, branch_id INTEGER, "
            "kind VARCHAR(8), amount_fen BIGINT, volume_ml BIGINT, occurred_on DATE)"
        )
        db.commit()
        for rows in baseline_chunks(total, 7):
            start = time.perf_counter()
            with (
                db.cursor() as cursor,
                cursor.copy(f"COPY bench_bare ({BARE_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            spent += time.perf_counter() - start
        start = time.perf_counter()
        db.commit()
        spent += time.perf_counter() - start
        db.execute("DROP TABLE bench_bare")
        db.commit()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--transactions-per-customer", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--keep-indexes", action="store_true", help="do not drop/rebuild indexes around the load"
    )
    args = parser.parse_args()

    from crm_db import migrate
    from crm_db.demo import SeedOptions, SeedProgress, seed_demo
    from crm_db.session import make_engine

    def progress(event: SeedProgress) -> None:
        say(
            f"  [{event.phase}] {event.customers_done:,} customers, {event.total_rows:,} rows, "
            f"{event.rows_per_s:,.0f} rows/s, {event.elapsed_s:.1f} s, "
            f"RSS peak {peak_rss_mb():.0f} MB"
        )

    with target_database(args.database_url) as url:
        engine = make_engine(url)
        backend = engine.dialect.name
        migrate.upgrade(engine)
        say(
            f"seed: {backend}, {args.customers:,} customers x {args.transactions_per_customer} "
            f"transactions, indexes {'kept' if args.keep_indexes else 'dropped and rebuilt'}"
        )
        options = SeedOptions(
            customers=args.customers,
            seed=args.seed,
            transactions_per_customer=args.transactions_per_customer,
            rebuild_indexes=not args.keep_indexes,
        )
        report = seed_demo(engine, options, progress=progress)
        engine.dispose()

        say("")
        say(f"{'table':<22}{'rows':>14}{'seconds':>10}{'rows/s':>14}")
        for table, rows in report.rows.items():
            seconds = report.seconds.get(table, 0.0)
            rate = f"{rows / seconds:,.0f}" if rows >= 1_000 and seconds > 0 else "-"
            say(f"{table:<22}{rows:>14,}{seconds:>10.2f}{rate:>14}")
        say(f"{'(index rebuild/commit)':<22}{'':>14}{report.index_seconds:>10.2f}")
        for name, seconds in report.index_detail.items():
            say(f"  {name:<44}{seconds:>10.2f}")
        seed_rate = report.total_rows / report.total_seconds
        say(
            f"{'total':<22}{report.total_rows:>14,}{report.total_seconds:>10.2f}{seed_rate:>14,.0f}"
        )

        transactions = report.rows.get("transactions", 0)
        if backend == "sqlite":
            directory = Path(str(engine.url.database)).parent
            baseline_s = sqlite_baseline(directory, transactions)
            floor = "sqlite3 executemany into a bare table"
        else:
            baseline_s = postgres_baseline(url, transactions)
            floor = "COPY into an unindexed table"
    baseline_rate = transactions / baseline_s if baseline_s > 0 else 0.0
    ratio = seed_rate / baseline_rate if baseline_rate else 0.0
    say("")
    say(f"baseline ({floor}): {transactions:,} rows in {baseline_s:.2f} s = {baseline_rate:,.0f}/s")
    say(f"ratio seed/baseline: {ratio:.2f}; peak RSS {peak_rss_mb():.0f} MB")
    print_result(
        seconds=round(report.total_seconds, 1),
        rows_per_s=round(seed_rate),
        baseline_rows_per_s=round(baseline_rate),
        ratio=round(ratio, 3),
        peak_rss_mb=round(peak_rss_mb()),
    )


if __name__ == "__main__":
    main()
