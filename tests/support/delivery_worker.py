"""A delivering process for crash and concurrency tests.

    python -m tests.support.delivery_worker --url URL --port PORT [--lease S] [--batch N]


Runs ``deliver_due`` against the given database and SMTP port until every outbox row is settled
(sent, failed or suppressed), waiting for leases of killed predecessors to expire. Prints one
JSON line per run to stdout so a test can see what each process did.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from crm_db.enums import OutboxStatus
from crm_db.models import OutboxMessage
from crm_db.session import make_engine
from tasks.mail.deliver import deliver_due
from tests.support.outbox_data import delivery_settings


def _unsettled(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
            )
            or 0
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lease", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--data-timeout", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=90.0)
    args = parser.parse_args(argv)

    settings = delivery_settings(
        port=args.port,
        smtp_timeout_s=args.timeout,
        smtp_data_timeout_s=args.data_timeout,
        outbox_unknown_retry_s=0.5,
        smtp_concurrency=args.concurrency,
        outbox_lease_s=args.lease,
        outbox_batch_size=args.batch,
        outbox_max_attempts=100,  # crashes count attempts; the test is about loss and duplicates
        outbox_backoff_base_s=0.2,  # a retry (e.g. a timeout on a loaded machine) comes back soon
        outbox_backoff_max_s=1.0,
    )
    engine = make_engine(args.url)
    give_up = time.monotonic() + args.deadline
    try:
        while time.monotonic() < give_up:
            report = deliver_due(engine, settings, now=datetime.now(UTC))
            sys.stdout.write(json.dumps(report.counts()) + "\n")
            sys.stdout.flush()
            if report.claimed == 0:
                if _unsettled(engine) == 0:
                    return 0
                time.sleep(0.2)  # rows leased by a killed process: wait for the lease to end
        return 1
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
