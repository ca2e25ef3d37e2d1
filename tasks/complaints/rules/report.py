"""The monthly complaint feedback report's figures (四个不漏: every result fed back), as pure
rules over counts the IO layer aggregates in SQL.

Haier's three controls, each per 100,000 customers against the goal of under 1:
- **complaint rate** (投诉率): complaints received in the month per 100,000 customers;
- **omission rate** (遗漏率): complaints received in the month that were not handled within the
  first-response target - not acknowledged by ``first_response_due_at`` (late, or still not at
  the month's end) - per 100,000 customers; an unassigned complaint cannot be acknowledged, so
  "unassigned past first response" is inside this count;
- **dissatisfaction rate** (不满意率): complaints reopened in the month (a reopen, or the
  customer's "not solved", which reopens) per 100,000 customers.
SLA compliance: the share of the month's resolved complaints resolved by ``resolution_due_at``.
"""

from __future__ import annotations

from dataclasses import dataclass

PER = 100_000
GOAL_PER_100K = 1.0


@dataclass(frozen=True)
class ControlCounts:
    customers: int
    received: int
    omitted: int
    reopened: int
    resolved: int
    resolved_on_time: int


@dataclass(frozen=True)
class Controls:
    complaint_rate: float | None
    omission_rate: float | None
    dissatisfaction_rate: float | None
    sla_compliance_pct: float | None

    def over_goal(self) -> list[str]:
        """The controls at or above the goal of 1 per 100,000 customers."""
        rates = {
            "complaint_rate": self.complaint_rate,
            "omission_rate": self.omission_rate,
            "dissatisfaction_rate": self.dissatisfaction_rate,
        }
        return [name for name, rate in rates.items() if rate is not None and rate >= GOAL_PER_100K]


def per_100k(count: int, customers: int) -> float | None:
    """``count`` per 100,000 customers (``None`` without customers: no rate, not zero)."""
    return None if customers <= 0 else round(count * PER / customers, 3)


def controls(counts: ControlCounts) -> Controls:
    compliance = (
        None if counts.resolved == 0 else round(100 * counts.resolved_on_time / counts.resolved, 1)
    )
    return Controls(
        per_100k(counts.received, counts.customers),
        per_100k(counts.omitted, counts.customers),
        per_100k(counts.reopened, counts.customers),
        compliance,
    )


def trend_pct(current: int, previous: int) -> float | None:
    """Month-over-month change in percent (``None`` when last month had none)."""
    return None if previous == 0 else round(100 * (current - previous) / previous, 1)


__all__ = [
    "GOAL_PER_100K",
    "ControlCounts",
    "Controls",
    "controls",
    "per_100k",
    "trend_pct",
]
