"""Monthly targets per region, station and some account managers, set from the actuals.

The actuals are tallied while the chunks are generated (numpy ``bincount``, no second pass over
the database). A target is the month's actual (the current, partial month extrapolated to the
full month) times the station's ambition: most stations are set about right, about one in ten
too high (they end below 80 %) and one in ten too low (above 120 %), with monthly noise, so the
completion flags and the leaderboard have something to show. Two stations are edge cases: one
has no targets (东区's last station), and the station that opened this month has targets for
this month but no activity.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crm_db.demo.customers import CustomerChunk
from crm_db.demo.organisation import OrgPlan
from crm_db.demo.rng import stream
from crm_db.demo.timeline import Timeline
from crm_db.demo.transactions import TransactionChunk
from crm_db.enums import StaffRole, TargetMetric

TARGET_COLUMNS = ("id", "version_id", "period", "scope", "scope_id", "metric", "value")
VERSION_COLUMNS = ("id", "created_at", "created_by", "source", "source_name", "note")
DEMO_VERSION_ID: Final = 1
METRICS: Final = (
    TargetMetric.NEW_CUSTOMERS_PERSONAL,
    TargetMetric.NEW_CUSTOMERS_COMPANY,
    TargetMetric.NEW_CUSTOMERS_FLEET,
    TargetMetric.VOLUME_ML,
    TargetMetric.REVENUE_FEN,
    TargetMetric.RECHARGE_FEN,
    TargetMetric.FIRST_RECHARGE_FEN,
    TargetMetric.NEW_CUSTOMER_VOLUME_ML,
)
STAFF_TARGET_SHARE: Final = 0.2
AMBITION: Final = (1.0, 1.3, 0.8)  # about right, too high, too low
AMBITION_P: Final = (0.8, 0.1, 0.1)
MONTHLY_NOISE: Final = 0.08


@dataclass
class Tally:
    """Actuals per (scope member, month, metric): [n, months, len(METRICS)] in METRICS order."""

    months: int
    branches: int
    staff: int
    branch: npt.NDArray[np.float64] = field(init=False)
    manager: npt.NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        self.branch = np.zeros((self.branches + 1, self.months, len(METRICS)))
        self.manager = np.zeros((self.staff + 1, self.months, len(METRICS)))

    def _add(
        self,
        into: npt.NDArray[np.float64],
        who: npt.NDArray[np.int64],
        month: npt.NDArray[np.int64],
        metric: int | npt.NDArray[np.int64],
        weight: npt.NDArray[np.float64] | None,
    ) -> None:
        keep = month >= 0
        shape = into.shape
        key = (who[keep] * shape[1] + month[keep]) * shape[2] + (
            metric[keep] if isinstance(metric, np.ndarray) else metric
        )
        size = shape[0] * shape[1] * shape[2]
        counts = np.bincount(key, weights=None if weight is None else weight[keep], minlength=size)
        into += counts.reshape(shape)

    def add_customers(self, chunk: CustomerChunk, timeline: Timeline) -> None:
        month = timeline.month_index(chunk.first_card)
        self._add(self.branch, chunk.branch, month, chunk.card_type, None)
        self._add(self.manager, chunk.account_manager, month, chunk.card_type, None)

    def add_transactions(
        self, chunk: TransactionChunk, people: CustomerChunk, timeline: Timeline
    ) -> None:
        """``people`` is the customer chunk whose transactions ``chunk`` holds (all of them)."""
        sale = ~chunk.recharge
        month = timeline.month_index(chunk.day)
        sale_month = np.where(sale, month, -1)
        recharge_month = np.where(chunk.recharge, month, -1)
        volume = chunk.volume_ml.astype(np.float64)
        amount = chunk.amount_fen.astype(np.float64)
        years = np.array([int(m[:4]) for m in timeline.months] + [0], dtype=np.int64)
        at = np.searchsorted(people.ids, chunk.customer_id)
        card_month = timeline.month_index(people.first_card)[at]
        # Developed this year: first card in the same calendar year as the purchase.
        new_sale = np.where(years[card_month] == years[sale_month], sale_month, -1)
        # Each new card's first recharge (earliest day, then file order), in its card month.
        order = np.lexsort((np.arange(len(chunk)), chunk.day, ~chunk.recharge, chunk.customer_id))
        first = order[np.unique(chunk.customer_id[order], return_index=True)[1]]
        first = first[chunk.recharge[first]]
        first_month = np.full(len(chunk), -1, dtype=np.int64)
        first_month[first] = card_month[first]
        for metric, when, weight in (
            (3, sale_month, volume),
            (4, sale_month, amount),
            (5, recharge_month, amount),
            (6, first_month, amount),
            (7, new_sale, volume),
        ):
            self._add(self.branch, chunk.branch_id, when, metric, weight)
            self._add(self.manager, chunk.account_manager, when, metric, weight)


def _round_target(value: float, metric: TargetMetric) -> int:
    """Targets as people set them: three significant figures, at least one unit."""
    amounts = (
        TargetMetric.VOLUME_ML,
        TargetMetric.REVENUE_FEN,
        TargetMetric.RECHARGE_FEN,
        TargetMetric.FIRST_RECHARGE_FEN,
        TargetMetric.NEW_CUSTOMER_VOLUME_ML,
    )
    floor = 100_000 if metric in amounts else 1  # 1,000 CNY or 100 L; one customer
    if value <= floor:
        return floor
    digits = int(np.floor(np.log10(value))) - 2
    step = 10 ** max(digits, 0)
    return int(round(value / step) * step)


def target_version_rows(timeline: Timeline) -> list[tuple[Any, ...]]:
    """The one target version the demo's targets belong to."""
    return [(DEMO_VERSION_ID, timeline.reference_text, "demo seed", "demo", None, "demo targets")]


def plan_targets(
    seed: int, tally: Tally, org: OrgPlan, timeline: Timeline
) -> list[tuple[Any, ...]]:
    rng = stream(seed, "targets")
    months = len(timeline.months)
    # The as-of month is partial: extrapolate what happened so far to the whole month.
    days_in_month = calendar.monthrange(timeline.as_of.year, timeline.as_of.month)[1]
    elapsed = timeline.as_of.day - 1
    scale = np.ones(months)
    scale[-1] = days_in_month / elapsed if elapsed > 0 else 1.0
    branch_actual, manager_actual = tally.branch.copy(), tally.manager.copy()
    if elapsed == 0:
        # As of the 1st nothing of the month has happened yet: plan it like the month before.
        branch_actual[:, -1] = branch_actual[:, -2]
        manager_actual[:, -1] = manager_actual[:, -2]

    rows: list[tuple[Any, ...]] = []

    def emit(
        scope: str,
        scope_id: int,
        expected: npt.NDArray[np.float64],
        ambition: float,
        first_month: int = 0,
    ) -> None:
        noise = rng.lognormal(0.0, MONTHLY_NOISE, expected.shape)
        for m, period in enumerate(timeline.months):
            if m < first_month:
                continue
            for k, metric in enumerate(METRICS):
                value = _round_target(float(expected[m, k] * ambition * noise[m, k]), metric)
                rows.append(
                    (len(rows) + 1, DEMO_VERSION_ID, period, scope, scope_id, metric.value, value)
                )

    ambition = np.array(AMBITION)[rng.choice(len(AMBITION), size=org.branch_count, p=AMBITION_P)]
    typical = np.median(branch_actual[1:, :, :] * scale[None, :, None], axis=0)
    for region_id, *_ in org.region_rows:
        members = [b + 1 for b in range(org.branch_count) if org.branch_region[b] == region_id - 1]
        expected = branch_actual[members].sum(axis=0) * scale[:, None]
        emit("region", region_id, expected, float(rng.lognormal(0.0, 0.05)))
    for branch_id in range(1, org.branch_count + 1):
        if branch_id == org.no_target_branch:
            continue
        expected = branch_actual[branch_id] * scale[:, None]
        if branch_id == org.new_branch:
            # Opened this month: a target for this month only, planned at a third of a
            # typical station, and nothing sold yet.
            opening = np.zeros_like(expected)
            opening[-1] = typical[-1] / 3
            emit("branch", branch_id, opening, 1.0, first_month=months - 1)
            continue
        emit("branch", branch_id, expected, float(ambition[branch_id - 1]))

    managers = [
        row[0]
        for row in org.staff_rows
        if row[6] == StaffRole.ACCOUNT_MANAGER.value and org.staff_active[row[0]]
    ]
    wanted = min(len(managers), max(2, round(STAFF_TARGET_SHARE * len(managers))))
    chosen = rng.choice(managers, size=wanted, replace=False)
    for staff_id in sorted(int(s) for s in chosen):
        emit("staff", staff_id, manager_actual[staff_id] * scale[:, None], 1.0)
    return rows
