"""A compact read-only map between serial ids, for reference tables that only grow.

The revisits table gains a row per customer and cadence, so an importer that checks revisit
ids would hold millions of them: as a dict that is ~106 MB per million entries, as an array of
8-byte values indexed by ``id - lowest id`` it is ~8 MB. Pure: no database access.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping

# A slot costs 8 bytes, a dict entry ~106: the array stays smaller up to ~13 slots per key
# (gaps from deleted rows or skipped sequence values); beyond 8 use a dict, with a margin.
_MAX_SLOTS_PER_KEY = 8


class DenseIdMap(Mapping[int, int]):
    """``slots[key - base]`` holds the value, 0 meaning no such key (ids start at 1); keys
    outside the array's range (rows added while it was loaded) live in ``extra``."""

    __slots__ = ("_base", "_extra", "_size", "_slots")

    def __init__(self, base: int, slots: array[int], extra: dict[int, int]) -> None:
        self._base = base
        self._slots = slots
        self._extra = extra
        self._size = sum(1 for value in slots if value) + len(extra)

    def __getitem__(self, key: int) -> int:
        index = key - self._base
        if 0 <= index < len(self._slots):
            value = self._slots[index]
            if value:
                return value
            raise KeyError(key)
        return self._extra[key]

    def __iter__(self) -> Iterator[int]:
        yield from (self._base + index for index, value in enumerate(self._slots) if value)
        yield from self._extra

    def __len__(self) -> int:
        return self._size


def id_map(
    pairs: Iterable[tuple[int, int]], low: int | None, high: int | None, count: int
) -> Mapping[int, int]:
    """Build the map from ``pairs`` (key, value), both positive ids, given the keys' minimum,
    maximum and count as measured just before (used to size the array); a dict when the keys
    are too sparse for an array to pay off."""
    if low is None or high is None or count == 0 or high - low + 1 > _MAX_SLOTS_PER_KEY * count:
        return {key: value for key, value in pairs}  # not dict(): a Result has keys()
    slots = array("q", bytes(8 * (high - low + 1)))
    extra: dict[int, int] = {}
    for key, value in pairs:
        if low <= key <= high:
            slots[key - low] = value
        else:
            extra[key] = value
    return DenseIdMap(low, slots, extra)
