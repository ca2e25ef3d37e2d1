"""Capped lists: the first N entities with all their items, the total and how many are left out."""

from __future__ import annotations

import pytest

from tasks.rules.listing import first_of


def test_the_cap_counts_entities_and_keeps_their_items_together() -> None:
    items = [("a", 1), ("a", 2), ("b", 1), ("c", 1), ("c", 2), ("d", 1)]
    listing = first_of(items, 2, key=lambda item: item[0])
    assert listing.shown == [("a", 1), ("a", 2), ("b", 1)]
    assert (listing.total, listing.more) == (4, 2)
    assert listing.context() == {"items": listing.shown, "total_count": 4, "more_count": 2}


def test_a_list_within_the_cap_is_whole() -> None:
    items = ["x", "y"]
    listing = first_of(items, 20, key=str)
    assert (listing.shown, listing.total, listing.more) == (items, 2, 0)
    assert first_of([], 1, key=str).total == 0


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        first_of(["x"], 0, key=str)
