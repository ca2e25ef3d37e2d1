"""Capped lists in emails: name the first N and say how many are left out (no silent cap).

Pure. An email to a person lists at most ``limit`` entities (customers, complaints); the rest
are counted, never dropped without a word. Several items may belong to one entity (a complaint
first seen past several escalation tiers): the cap counts entities, and an entity's items stay
together.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Listing(Generic[T]):
    shown: list[T]  # the items of the first ``limit`` entities, in the order given
    total: int  # entities in all
    more: int  # entities left out

    def context(self) -> dict[str, object]:
        """The email context keys every capped list uses: ``items``, ``total_count``,
        ``more_count``."""
        return {"items": self.shown, "total_count": self.total, "more_count": self.more}


def first_of(items: Sequence[T], limit: int, key: Callable[[T], Hashable]) -> Listing[T]:
    """The items of the first ``limit`` distinct ``key``s (in order of first appearance), and
    how many ``key``s there are and are left out. ``limit`` must be at least 1."""
    if limit < 1:
        raise ValueError(f"a list cap must be at least 1, got {limit}")
    order: dict[Hashable, int] = {}
    for item in items:
        order.setdefault(key(item), len(order))
    shown = [item for item in items if order[key(item)] < limit]
    return Listing(shown, len(order), max(0, len(order) - limit))


__all__ = ["Listing", "first_of"]
