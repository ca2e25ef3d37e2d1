"""The customer development leaderboard (客户开发英雄榜) and the quarterly award list (pure).

- **Who**: every staff member credited with at least one new customer in the period (new cards
  of the three card types, credited to the owner on the issue date, as the reconciliation
  credits them).
- **Rank**: more new customers first; equal: the larger first-recharge amount of those new
  cards (首次办卡充值金额, exact fen); equal on both: the same rank (competition ranking 1, 2,
  2, 4), listed by staff id.
- **Award** (a monthly run that closes a quarter, over the quarter's figures): the top
  ``award_top_pct`` % of the ranked list, rounded up (at least one place when anyone ranks),
  extended to everyone who shares the last awarded rank - a tie is never split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.reconcile import Key

NEW_CUSTOMER_METRICS = (
    TargetMetric.NEW_CUSTOMERS_PERSONAL,
    TargetMetric.NEW_CUSTOMERS_COMPANY,
    TargetMetric.NEW_CUSTOMERS_FLEET,
)


@dataclass(frozen=True, slots=True)
class Developed:
    """One staff member's development figures in a period."""

    staff_id: int
    new_customers: int
    first_recharge_fen: int


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    staff_id: int
    new_customers: int
    first_recharge_fen: int


def developed(totals: Mapping[Key, int]) -> list[Developed]:
    """The staff members' figures from rolled-up actuals (``reconcile.roll_up``'s keys)."""
    new: dict[int, int] = {}
    first: dict[int, int] = {}
    for (scope, scope_id, metric), value in totals.items():
        if scope is not TargetScope.STAFF:
            continue
        if metric in NEW_CUSTOMER_METRICS:
            new[scope_id] = new.get(scope_id, 0) + value
        elif metric is TargetMetric.FIRST_RECHARGE_FEN:
            first[scope_id] = first.get(scope_id, 0) + value
    return [Developed(s, new.get(s, 0), first.get(s, 0)) for s in sorted({*new, *first})]


def leaderboard(figures: Iterable[Developed]) -> list[Ranked]:
    """The ranked list (see the module docstring): best first."""
    eligible = sorted(
        (f for f in figures if f.new_customers > 0),
        key=lambda f: (-f.new_customers, -f.first_recharge_fen, f.staff_id),
    )
    ranked: list[Ranked] = []
    for position, f in enumerate(eligible, start=1):
        tied = ranked and (ranked[-1].new_customers, ranked[-1].first_recharge_fen) == (
            f.new_customers,
            f.first_recharge_fen,
        )
        rank = ranked[-1].rank if tied else position
        ranked.append(Ranked(rank, f.staff_id, f.new_customers, f.first_recharge_fen))
    return ranked


def award_places(ranked_count: int, top_pct: int) -> int:
    """How many places the award's share gives: ``ceil(count x pct / 100)``, at least one
    when anyone ranks and the share is positive; never more than everyone."""
    if not 0 <= top_pct <= 100:
        raise ValueError(f"award share {top_pct} %: must be between 0 and 100")
    if ranked_count == 0 or top_pct == 0:
        return 0
    return max(1, min(ranked_count, -(-ranked_count * top_pct // 100)))


def award_list(ranked: Sequence[Ranked], top_pct: int) -> list[Ranked]:
    """The winners: the first ``award_places`` entries and everyone tied with the last."""
    places = award_places(len(ranked), top_pct)
    if places == 0:
        return []
    last = ranked[places - 1].rank
    return [r for r in ranked if r.rank <= last]


def in_region(
    ranked: Iterable[Ranked], staff_region: Mapping[int, int | None], region_id: int
) -> list[Ranked]:
    """The entries of a region's staff, keeping their company rank (a region manager sees
    their people's place on the company's board, and no figure of anyone else)."""
    return [r for r in ranked if staff_region.get(r.staff_id) == region_id]
