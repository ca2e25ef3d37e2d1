"""Benchmark: business-minute SLA deadlines for N complaints against plain clock arithmetic.

    python benchmarks/business_time.py [--n 100000] [--rounds 3]

For N complaints received at random instants of 2026 (seeded), computes the first-response
deadline (540 business minutes) and the resolution deadline (1,620) on the CN calendar
(Asia/Shanghai, 09:00-18:00, the chinese_calendar holidays) plus the elapsed business minutes
since receipt, with ``tasks.rules.business_time``. The baseline, in the same run, is the 24x7
answer by plain aware-datetime arithmetic (``received + timedelta``, one subtraction): the
ratio says what the calendar costs per complaint. Rounds alternate; the best of each is kept.

Last line: ``RESULT n=… calendar_s=… baseline_s=… ratio=… us_per_complaint=…``.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from crm_db.calendar_sync import package_calendar
from tasks.rules.business_time import (
    BusinessHours,
    add_business_minutes,
    business_minutes_between,
)
from tasks.rules.calendar import WorkCalendar


def _received(n: int) -> list[datetime]:
    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [base + timedelta(seconds=rng.randrange(360 * 86400)) for _ in range(n)]


def _calendar_round(received: list[datetime], hours: BusinessHours, now: datetime) -> float:
    started = time.perf_counter()
    for at in received:
        add_business_minutes(at, 540, hours)
        add_business_minutes(at, 1620, hours)
        business_minutes_between(at, min(now, at + timedelta(days=3)), hours)
    return time.perf_counter() - started


def _baseline_round(received: list[datetime], now: datetime) -> float:
    started = time.perf_counter()
    for at in received:
        _ = at + timedelta(minutes=540)
        _ = at + timedelta(minutes=1620)
        _ = (min(now, at + timedelta(days=3)) - at) // timedelta(minutes=1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    days = {d: v.is_working for d, v in package_calendar().days.items()}
    hours = BusinessHours(WorkCalendar.from_pattern("12345", days), ZoneInfo("Asia/Shanghai"))
    received = _received(args.n)
    now = datetime(2026, 12, 7, 4, tzinfo=UTC)
    best_cal = best_base = float("inf")
    for _ in range(args.rounds):
        best_cal = min(best_cal, _calendar_round(received, hours, now))
        best_base = min(best_base, _baseline_round(received, now))
    print(f"calendar: {best_cal:.3f} s for {args.n} complaints x (2 deadlines + 1 elapsed)")
    print(f"baseline (24x7 datetime arithmetic): {best_base:.3f} s")
    print(
        f"RESULT n={args.n} calendar_s={best_cal:.3f} baseline_s={best_base:.3f} "
        f"ratio={best_cal / best_base:.1f} us_per_complaint={best_cal / args.n * 1e6:.1f}"
    )


if __name__ == "__main__":
    main()
