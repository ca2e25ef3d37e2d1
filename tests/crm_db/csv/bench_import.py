# ruff: noqa: T201  (a benchmark script reports on stdout)
"""Benchmark: import N transactions from CSV into a fresh SQLite (or PostgreSQL) database.

    .venv/bin/python -m tests.crm_db.csv.bench_import --rows 100000 [--url postgresql://...]

Prints rows/s for the first import (all inserts) and for a re-import (all unchanged), the
validation pass alone, and the peak RSS of the process (the import streams: it should not grow
with the file beyond the id set and the customer lookup).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text

from crm_db import migrate
from crm_db.csv_import import ImportOptions, import_csv
from crm_db.csv_import.db_lookups import load_lookups
from crm_db.csv_import.kinds import KINDS
from crm_db.csv_import.reader import CsvFile
from crm_db.csv_import.validation import validate_file
from crm_db.enums import CardType
from crm_db.models import Customer
from crm_db.session import make_engine
from tests.crm_db.csv_factories import TRANSACTION_HEADER, make_org


def _seed_customers(engine: Engine, count: int, branch_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "external_id": f"BC{n:07d}",
                    "name": f"客户 {n}",
                    "card_type": CardType.PERSONAL,
                    "branch_id": branch_id,
                    "first_card_on": date(2024, 1, 1),
                }
                for n in range(count)
            ],
        )


def _write_file(path: Path, rows: int, customers: int) -> None:
    rng = random.Random(7)
    start = date(2025, 1, 1)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(TRANSACTION_HEADER)
        for n in range(rows):
            writer.writerow(
                [
                    f"TX{n:09d}",
                    f"BC{rng.randrange(customers):07d}",
                    rng.choice(("B1", "B2")),
                    rng.choice(("recharge", "purchase")),
                    f"{rng.randrange(1, 200_000) / 100:.2f}",
                    f"{rng.randrange(0, 80_000) / 1000:.3f}",
                    (start + timedelta(days=rng.randrange(365))).isoformat(),
                ]
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=2_000)
    parser.add_argument("--url", help="PostgreSQL server URL (default: a temporary SQLite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ.setdefault("CRM_VAR_DIR", str(workdir / "var"))  # keep var/ out of the checkout
        database = None
        if args.url:
            database = f"crm_bench_{uuid.uuid4().hex[:8]}"
            admin = make_engine(args.url)
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text(f'CREATE DATABASE "{database}"'))
            url = args.url.rsplit("/", 1)[0] + f"/{database}"
        else:
            url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            org = make_org(engine, customers=0)
            _seed_customers(engine, args.customers, org.branch_ids["B1"])
            path = workdir / "transactions.csv"
            _write_file(path, args.rows, args.customers)
            size_mb = path.stat().st_size / 1e6
            print(
                f"{engine.dialect.name}: {args.rows:,} rows, {size_mb:.1f} MB, "
                f"{args.customers:,} customers, chunk {args.chunk_size:,}"
            )

            options = ImportOptions(
                now=datetime.now(UTC),
                default_timezone="Asia/Shanghai",
                default_locale="zh-CN",
                chunk_size=args.chunk_size,
            )
            errors: list[object] = []

            started = time.perf_counter()
            with engine.connect() as conn:
                lookups = load_lookups(
                    conn, KINDS["transactions"].needs, default_timezone="UTC", default_locale="en"
                )
            summary = validate_file(CsvFile(path), KINDS["transactions"], lookups, errors.append)
            validate_s = time.perf_counter() - started
            assert summary.errors == 0, errors[:5]
            print(
                f"  {'validation pass only':22s} {validate_s:6.2f} s  "
                f"{args.rows / validate_s:10,.0f} rows/s"
            )

            for label in ("first import (inserts)", "re-import (unchanged)"):
                started = time.perf_counter()
                result = import_csv(engine, "transactions", path, options, errors.append)
                elapsed = time.perf_counter() - started
                assert result.ok, errors[:5]
                print(
                    f"  {label:22s} {elapsed:6.2f} s  {args.rows / elapsed:10,.0f} rows/s  "
                    f"{result.counts}"
                )
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  peak RSS of the process: {peak_mb:.0f} MB")
        finally:
            engine.dispose()
            if database is not None:
                with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
