from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_db.enums import AbcClass, CardType, ValueQuadrant
from tasks.classification.rules import (
    AbcPolicy,
    ValuePolicy,
    abc_class,
    potential_is_high,
    value_quadrant,
)

POLICY = AbcPolicy()


def classify(revenues: list[int], policy: AbcPolicy = POLICY) -> list[AbcClass]:
    """Apply the rule the way the flow's SQL does: rank by revenue desc, ties by position."""
    order = sorted(range(len(revenues)), key=lambda i: (-revenues[i], i))
    total, before, result = sum(revenues), 0, [AbcClass.C] * len(revenues)
    for rank, index in enumerate(order, start=1):
        result[index] = abc_class(
            rank=rank,
            revenue_before=before,
            total_revenue=total,
            n_customers=len(revenues),
            policy=policy,
        )
        before += revenues[index]
    return result


def test_textbook_pareto() -> None:
    # 10 customers of 1,000: two hold 80 % -> A; the last five together hold 5 % -> C.
    revenues = [400, 400, 60, 50, 40, 20, 15, 10, 4, 1]
    classes = classify(revenues)
    assert classes[:2] == [AbcClass.A, AbcClass.A]
    assert classes[2:5] == [AbcClass.B] * 3
    assert classes[5:] == [AbcClass.C] * 5
    # One more unit of revenue on the 20 moves it out of the tail.
    assert classify([400, 400, 60, 50, 40, 21, 15, 10, 4, 1])[5] is AbcClass.B


def test_a_is_capped_at_top_20_percent_of_customers() -> None:
    revenues = [100] * 10  # flat: 80 % of revenue needs 8 customers, the cap allows 2
    assert classify(revenues).count(AbcClass.A) == 2


def test_no_revenue_means_c() -> None:
    assert classify([0, 0, 0]) == [AbcClass.C] * 3
    assert classify([500, 0])[1] is AbcClass.C


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        AbcPolicy(a_revenue_share=1.5)
    with pytest.raises(ValueError):
        AbcPolicy(a_revenue_share=0.97, c_revenue_tail_share=0.05)


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=300))
def test_invariants(revenues: list[int]) -> None:
    classes = classify(revenues)
    n, total = len(revenues), sum(revenues)
    a_count = classes.count(AbcClass.A)
    assert a_count <= POLICY.a_rank_cap(n)
    if total:
        c_revenue = sum(r for r, c in zip(revenues, classes, strict=True) if c is AbcClass.C)
        assert c_revenue <= POLICY.c_revenue_tail_share * total + max(revenues)
        # Every A customer earns at least as much as every non-A customer.
        a_min = min(
            (r for r, c in zip(revenues, classes, strict=True) if c is AbcClass.A), default=None
        )
        rest_max = max(
            (r for r, c in zip(revenues, classes, strict=True) if c is not AbcClass.A), default=None
        )
        if a_min is not None and rest_max is not None:
            assert a_min >= rest_max


def test_value_matrix() -> None:
    policy = ValuePolicy()
    assert potential_is_high(recent_fen=0, previous_fen=0, card_type=CardType.FLEET, policy=policy)
    assert potential_is_high(
        recent_fen=120, previous_fen=100, card_type=CardType.PERSONAL, policy=policy
    )
    assert not potential_is_high(
        recent_fen=100, previous_fen=100, card_type=CardType.COMPANY, policy=policy
    )
    assert potential_is_high(
        recent_fen=5, previous_fen=0, card_type=CardType.PERSONAL, policy=policy
    )
    assert value_quadrant(current_high=True, potential_high=True) is ValueQuadrant.HIGH
    assert value_quadrant(current_high=True, potential_high=False) is ValueQuadrant.SECONDARY
    assert value_quadrant(current_high=False, potential_high=True) is ValueQuadrant.POTENTIAL
    assert value_quadrant(current_high=False, potential_high=False) is ValueQuadrant.LOW
