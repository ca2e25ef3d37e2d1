"""Card recharges and fuel purchases for one chunk of customers, as numpy columns.

Each customer gets a lognormal spending level with card-type medians (fleets far above
companies, companies above personal cards), which gives the heavy Pareto tail that makes 80/20
classes meaningful. A purchase is one fill-up of a plausible size for the card type, so spending
shows as *how often* a customer buys: the chunk's fixed number of transactions is split in
proportion to spending / ticket size. Each customer follows a trend: steady, growing, declining,
or churned (nothing in the last three months), so churn warnings and the value matrix have
something to find. Purchases are revenue: amount in fen, volume in millilitres at the day's pump
price (7-8 CNY/L, adjusted every couple of weeks as in China); recharges move money onto the
card in round sums (volume 0) and are not revenue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crm_db.demo.customers import CustomerChunk
from crm_db.demo.organisation import OrgPlan
from crm_db.demo.rng import stream
from crm_db.demo.timeline import DayText, Timeline

TRANSACTION_COLUMNS = ("customer_id", "branch_id", "kind", "amount_fen", "volume_ml", "occurred_on")

# Per card type (personal, company, fleet).
SPEND_MEDIAN: Final = np.array([1.0, 8.0, 40.0])  # relative spending level
SPEND_SIGMA: Final = np.array([0.95, 0.95, 0.9])
TICKET_MEDIAN_CNY: Final = np.array([300.0, 600.0, 1_500.0])  # one fill-up
TICKET_SIGMA: Final = np.array([0.35, 0.45, 0.5])
RECHARGE_SHARE: Final = np.array([0.22, 0.15, 0.10])
HOME_BRANCH_SHARE: Final = np.array([0.9, 0.85, 0.65])  # fleets refuel along their routes
DIESEL_SHARE: Final = np.array([0.05, 0.2, 0.7])
PURCHASE_MIN_CNY: Final = np.array([30.0, 50.0, 100.0])
PURCHASE_MAX_CNY: Final = np.array([1_000.0, 4_000.0, 12_000.0])
TREND_SHARES: Final = (0.80, 0.08, 0.07, 0.05)  # steady, growing, declining, churned
STEADY, GROWING, DECLINING, CHURNED = range(4)
KIND_TEXT: Final = np.array(["purchase", "recharge"], dtype=object)


def pump_prices(seed: int, timeline: Timeline) -> npt.NDArray[np.int64]:
    """Price in fen per litre for each window day: [day, 0] petrol (92#), [day, 1] diesel (0#)."""
    rng = stream(seed, "pump-prices")
    days = timeline.as_of_ord - timeline.window_start_ord + 1
    steps = days // 14 + 1
    walk = np.cumsum(rng.normal(0.0, 0.12, steps))
    petrol = np.clip(7.75 + walk - walk.mean(), 7.3, 8.3)
    petrol_fen = np.round(np.repeat(petrol, 14)[:days] * 100).astype(np.int64)
    prices: npt.NDArray[np.int64] = np.stack([petrol_fen, petrol_fen - 38], axis=1)
    return prices


def allocate(total: int, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder), so
    a chunk holds exactly customers x transactions-per-customer rows."""
    if total == 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    counts: npt.NDArray[np.int64] = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        # A stable sort keeps ties in customer order, so the split is reproducible.
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


@dataclass(frozen=True)
class TransactionChunk:
    customer_id: npt.NDArray[np.int64]
    branch_id: npt.NDArray[np.int64]
    recharge: npt.NDArray[np.bool_]
    amount_fen: npt.NDArray[np.int64]
    volume_ml: npt.NDArray[np.int64]
    day: npt.NDArray[np.int64]  # ordinal
    account_manager: npt.NDArray[np.int64]  # the customer's, for per-manager actuals

    def __len__(self) -> int:
        return len(self.customer_id)

    def rows(self, days: DayText, batch: int = 100_000) -> Iterator[tuple[Any, ...]]:
        """Row tuples in TRANSACTION_COLUMNS order, converted ``batch`` rows at a time (Python
        objects for a whole chunk would cost ~100 MB)."""
        kinds = KIND_TEXT[self.recharge.astype(np.int64)]
        for start in range(0, len(self), batch):
            part = slice(start, start + batch)
            yield from zip(
                self.customer_id[part].tolist(),
                self.branch_id[part].tolist(),
                kinds[part].tolist(),
                self.amount_fen[part].tolist(),
                self.volume_ml[part].tolist(),
                days.days(self.day[part]),
                strict=True,
            )


def generate_transactions(
    seed: int,
    chunk: int,
    customers: CustomerChunk,
    per_customer: int,
    org: OrgPlan,
    timeline: Timeline,
    prices: npt.NDArray[np.int64],
) -> TransactionChunk:
    rng = stream(seed, "transactions", chunk)
    n = len(customers)
    card = customers.card_type
    spend = SPEND_MEDIAN[card] * np.exp(SPEND_SIGMA[card] * rng.standard_normal(n))
    trend = rng.choice(4, size=n, p=TREND_SHARES)

    start = np.maximum(customers.first_card, timeline.window_start_ord)
    end = np.full(n, timeline.last_day_ord, dtype=np.int64)
    churned = trend == CHURNED
    end[churned] -= rng.integers(91, 240, int(churned.sum()))
    span = end - start + 1
    active = span > 0
    months = np.where(active, span / 30.4, 0.0)
    weight = np.where(active, spend / TICKET_MEDIAN_CNY[card] * months, 0.0)
    counts = allocate(n * per_customer, weight)

    owner = np.repeat(np.arange(n), counts)
    total = len(owner)
    u = rng.random(total)
    shape = trend[owner]
    position = np.where(
        shape == GROWING,
        np.sqrt(u),
        np.where(shape == DECLINING, 1.0 - np.sqrt(1.0 - u), u),
    )
    day = start[owner] + np.minimum((position * span[owner]).astype(np.int64), span[owner] - 1)

    tx_card = card[owner]
    recharge = rng.random(total) < RECHARGE_SHARE[tx_card]
    amount_cny = np.clip(
        TICKET_MEDIAN_CNY[tx_card] * rng.lognormal(0.0, TICKET_SIGMA[tx_card]),
        PURCHASE_MIN_CNY[tx_card],
        PURCHASE_MAX_CNY[tx_card],
    )
    # Recharges are round sums: one to six fill-ups, in hundreds of yuan.
    topup = np.maximum(
        100.0, np.round(TICKET_MEDIAN_CNY[tx_card] * rng.uniform(1.0, 6.0, total), -2)
    )
    amount_fen = np.round(np.where(recharge, topup, amount_cny) * 100).astype(np.int64)
    diesel = rng.random(total) < DIESEL_SHARE[tx_card]
    price = prices[day - timeline.window_start_ord, diesel.astype(np.int64)]
    volume_ml = np.where(recharge, 0, amount_fen * 1000 // price)

    home = customers.branch[owner]
    region = org.branch_region[home - 1]
    pick = (rng.random(total) * org.region_branch_counts[region]).astype(np.int64)
    elsewhere = org.region_branch_ids[org.region_branch_offsets[region] + pick]
    branch = np.where(rng.random(total) < HOME_BRANCH_SHARE[tx_card], home, elsewhere)

    # Rows in (customer, day) order: the (customer_id, occurred_on) index then grows at its end.
    order = np.lexsort((day, owner))
    return TransactionChunk(
        customer_id=customers.ids[owner][order],
        branch_id=branch[order],
        recharge=recharge[order],
        amount_fen=amount_fen[order],
        volume_ml=volume_ml[order],
        day=day[order],
        account_manager=customers.account_manager[owner][order],
    )
