"""Leaderboard and award rules: new customers first, then first recharges, ties share a rank
(1, 2, 2, 4); staff without a new customer are not ranked; the award share is rounded up, at
least one place, and a tie at the last place is never split; a region's entries keep their
company rank."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.leaderboard import (
    Developed,
    Ranked,
    award_list,
    award_places,
    developed,
    in_region,
    leaderboard,
)

S, B = TargetScope.STAFF, TargetScope.BRANCH
M = TargetMetric


def test_figures_add_the_card_types_and_ignore_other_scopes() -> None:
    totals = {
        (S, 7, M.NEW_CUSTOMERS_PERSONAL): 2,
        (S, 7, M.NEW_CUSTOMERS_FLEET): 1,
        (S, 7, M.FIRST_RECHARGE_FEN): 50_000,
        (S, 7, M.REVENUE_FEN): 9_999_999,  # not a development figure
        (S, 8, M.NEW_CUSTOMERS_COMPANY): 1,
        (B, 7, M.NEW_CUSTOMERS_PERSONAL): 40,  # a branch, not a person
    }
    assert developed(totals) == [Developed(7, 3, 50_000), Developed(8, 1, 0)]


def test_ranking_rule_and_ties() -> None:
    figures = [
        Developed(1, 3, 10_000),
        Developed(2, 5, 0),
        Developed(3, 3, 20_000),  # same count as 1, larger first recharge: ahead of 1
        Developed(4, 3, 10_000),  # equal to 1 on both: same rank, listed by id
        Developed(5, 0, 0),  # nobody developed: not ranked
        Developed(6, 1, 0),
    ]
    assert leaderboard(figures) == [
        Ranked(1, 2, 5, 0),
        Ranked(2, 3, 3, 20_000),
        Ranked(3, 1, 3, 10_000),
        Ranked(3, 4, 3, 10_000),
        Ranked(5, 6, 1, 0),  # competition ranking: 1, 2, 3, 3, 5
    ]
    assert leaderboard([]) == []


@pytest.mark.parametrize(
    ("count", "pct", "places"),
    [(0, 10, 0), (1, 10, 1), (9, 10, 1), (10, 10, 1), (11, 10, 2), (2000, 10, 200), (7, 0, 0)],
)
def test_award_places_round_up_with_at_least_one(count: int, pct: int, places: int) -> None:
    assert award_places(count, pct) == places


def test_award_share_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="101"):
        award_places(10, 101)


def test_a_tie_at_the_last_award_place_is_not_split() -> None:
    ranked = leaderboard(
        [Developed(i, n, 0) for i, n in enumerate([9, 8, 8, 8, 5, 4, 3, 2, 1, 1, 1], start=1)]
    )
    # 11 ranked, 10 %: 2 places; the second place is shared by three people.
    assert [(r.rank, r.staff_id) for r in award_list(ranked, 10)] == [
        (1, 1),
        (2, 2),
        (2, 3),
        (2, 4),
    ]
    assert award_list(ranked, 0) == [] and award_list([], 10) == []


def test_a_region_keeps_its_staff_with_their_company_rank() -> None:
    ranked = leaderboard([Developed(1, 5, 0), Developed(2, 4, 0), Developed(3, 3, 0)])
    regions = {1: 10, 2: 20, 3: 10}
    assert [(r.rank, r.staff_id) for r in in_region(ranked, regions, 10)] == [(1, 1), (3, 3)]
    assert in_region(ranked, regions, 30) == []


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=0, max_size=30),
    st.integers(0, 100),
)
def test_ranks_and_awards_follow_the_rule_on_random_boards(
    raw: list[tuple[int, int]], pct: int
) -> None:
    figures = [Developed(i, n, fen * 1000) for i, (n, fen) in enumerate(raw)]
    ranked = leaderboard(figures)
    assert len(ranked) == sum(1 for n, _ in raw if n > 0)
    for entry in ranked:  # rank = 1 + how many are strictly better
        better = sum(
            1
            for other in ranked
            if (other.new_customers, other.first_recharge_fen)
            > (entry.new_customers, entry.first_recharge_fen)
        )
        assert entry.rank == better + 1
    winners = award_list(ranked, pct)
    places = award_places(len(ranked), pct)
    assert len(winners) >= places
    if winners:
        last = winners[-1].rank
        assert all(r in winners for r in ranked if r.rank <= last)  # no tie split
        assert ranked[places - 1].rank == last
