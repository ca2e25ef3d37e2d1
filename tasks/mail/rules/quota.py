"""A relay's sending limits as fixed time windows: how many of the wanted slots to grant now.

A limit is "at most ``limit`` messages in each window of ``span_s`` seconds", windows aligned on
the epoch (each calendar second, each clock hour, UTC), as relays state them. The counts live in
one row per relay and window span (``tasks.mail.quota``); this module only decides, from the
stored row and the time, what the row becomes and how many slots the caller gets.

A stored window that is newer than the caller's own (another worker's clock is ahead) is
counted as the current one: a clock behind never resets a count another worker is using.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    span_s: int  # 1: per second, 3600: per hour
    limit: int  # messages per window, >= 1


@dataclass(frozen=True, slots=True)
class WindowCount:
    """A stored count: messages granted in the window that starts at ``start`` (epoch s)."""

    span_s: int
    start: int
    used: int


@dataclass(frozen=True, slots=True)
class Grant:
    granted: int
    counts: tuple[WindowCount, ...]  # what the stored rows become
    usable_until: float  # epoch s: the granted slots belong to windows that end here
    reopens_at: float | None  # epoch s: when a window that is now full starts afresh


def window_start(now: float, span_s: int) -> int:
    return int(now // span_s) * span_s


def grant(
    windows: Sequence[Window],
    stored: Mapping[int, WindowCount],
    *,
    now: float,
    wanted: int,
) -> Grant:
    """Slots for ``wanted`` messages at ``now`` (epoch s), within every window's limit."""
    if not windows:
        raise ValueError("grant needs at least one window")
    current: list[WindowCount] = []
    for window in windows:
        start = window_start(now, window.span_s)
        row = stored.get(window.span_s)
        if row is not None and row.start >= start:
            current.append(row)
        else:
            current.append(WindowCount(window.span_s, start, 0))
    rooms = [
        max(0, window.limit - count.used) for window, count in zip(windows, current, strict=True)
    ]
    granted = max(0, min(wanted, *rooms))
    counts = tuple(
        WindowCount(count.span_s, count.start, count.used + granted) for count in current
    )
    full = [
        count.start + count.span_s
        for window, count in zip(windows, counts, strict=True)
        if count.used >= window.limit
    ]
    return Grant(
        granted=granted,
        counts=counts,
        usable_until=float(min(count.start + count.span_s for count in counts)),
        reopens_at=float(max(full)) if full else None,
    )
