"""Customer classification rules: A/B/C by the Pareto rule, and the value matrix (客户价值矩阵).

The flow computes the inputs in SQL (trailing-12-month revenue, rank, revenue ranked before the
customer, growth) and applies these functions per chunk; ``crm_db`` never decides a class.

A/B/C (重要客户认定), customers ranked by trailing-12-month revenue, highest first, ties by id:
- A: the customers needed to reach ``a_revenue_share`` (80 %) of revenue, but never more than the
  top ``a_max_customer_share`` (20 %) of customers;
- C: the tail - customers ranked after the point where ``1 - c_revenue_tail_share`` (95 %) of
  revenue is reached, i.e. together they make at most 5 % (this includes every customer without
  revenue);
- B: the rest. A pinned class (manual override with a reason) always wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from crm_db.enums import AbcClass, CardType, ValueQuadrant
from crm_db.policy_defaults import (
    ABC_A_MAX_CUSTOMER_SHARE,
    ABC_A_REVENUE_SHARE,
    ABC_C_REVENUE_TAIL_SHARE,
    VALUE_CURRENT_HIGH_REVENUE_FEN,
    VALUE_GROWTH_HIGH_RATIO,
)


@dataclass(frozen=True)
class AbcPolicy:
    # Defaults defined once, with the settings that override them.
    a_revenue_share: float = ABC_A_REVENUE_SHARE.default
    a_max_customer_share: float = ABC_A_MAX_CUSTOMER_SHARE.default
    c_revenue_tail_share: float = ABC_C_REVENUE_TAIL_SHARE.default

    def __post_init__(self) -> None:
        for name in ("a_revenue_share", "a_max_customer_share", "c_revenue_tail_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.a_revenue_share > 1 - self.c_revenue_tail_share:
            raise ValueError("a_revenue_share overlaps the C tail")

    def a_rank_cap(self, n_customers: int) -> int:
        """The highest rank that may still be A (at least 1 when there are customers)."""
        return max(1, math.floor(self.a_max_customer_share * n_customers)) if n_customers else 0


def abc_class(
    *, rank: int, revenue_before: int, total_revenue: int, n_customers: int, policy: AbcPolicy
) -> AbcClass:
    """Class of the customer at ``rank`` (1 = highest revenue).

    ``revenue_before`` is the summed revenue of every customer ranked above this one, so a
    customer is "needed to reach 80 %" exactly when ``revenue_before < 80 % of total``.
    """
    if total_revenue <= 0:
        return AbcClass.C
    if rank <= policy.a_rank_cap(n_customers) and (
        revenue_before < policy.a_revenue_share * total_revenue
    ):
        return AbcClass.A
    if revenue_before >= (1 - policy.c_revenue_tail_share) * total_revenue:
        return AbcClass.C
    return AbcClass.B


@dataclass(frozen=True)
class ValuePolicy:
    """Current value is high at or above ``current_high_revenue_fen`` (trailing 12 months);
    potential is high when revenue grows by ``growth_high_ratio`` (last 3 months over the 3 before)
    or the card type is one that grows (fleets)."""

    current_high_revenue_fen: int = VALUE_CURRENT_HIGH_REVENUE_FEN.default  # 50,000 CNY a year
    growth_high_ratio: float = VALUE_GROWTH_HIGH_RATIO.default
    growing_card_types: frozenset[CardType] = frozenset({CardType.FLEET})


def potential_is_high(
    *, recent_fen: int, previous_fen: int, card_type: CardType, policy: ValuePolicy
) -> bool:
    if card_type in policy.growing_card_types:
        return True
    if previous_fen <= 0:
        return recent_fen > 0  # new spending where there was none is growth
    return recent_fen / previous_fen >= policy.growth_high_ratio


def value_quadrant(*, current_high: bool, potential_high: bool) -> ValueQuadrant:
    if current_high:
        return ValueQuadrant.HIGH if potential_high else ValueQuadrant.SECONDARY
    return ValueQuadrant.POTENTIAL if potential_high else ValueQuadrant.LOW
