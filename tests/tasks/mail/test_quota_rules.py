"""The relay quota's window arithmetic (``tasks.mail.rules.quota``), pure."""

from __future__ import annotations

import pytest

from tasks.mail.rules.quota import Window, WindowCount, grant, window_start

SECOND = Window(1, 5)
HOUR = Window(3600, 12)
T = 1_767_000_000.25  # an instant a quarter into its second


def test_windows_are_aligned_on_the_epoch() -> None:
    assert window_start(T, 1) == 1_767_000_000
    assert window_start(T, 3600) == 1_767_000_000 - 1_767_000_000 % 3600


def test_grants_up_to_the_room_left_and_counts_it() -> None:
    stored = {1: WindowCount(1, 1_767_000_000, 3)}
    result = grant([SECOND], stored, now=T, wanted=4)
    assert result.granted == 2
    assert result.counts == (WindowCount(1, 1_767_000_000, 5),)
    assert result.usable_until == 1_767_000_001
    assert result.reopens_at == 1_767_000_001  # full now: the next second starts afresh


def test_a_new_window_starts_from_zero() -> None:
    stored = {1: WindowCount(1, 1_766_999_999, 5)}
    result = grant([SECOND], stored, now=T, wanted=4)
    assert result.granted == 4 and result.counts == (WindowCount(1, 1_767_000_000, 4),)
    assert result.reopens_at is None


def test_a_stored_window_ahead_of_this_clock_still_counts() -> None:
    # Another worker's clock is a second ahead: its count is not reset by ours.
    stored = {1: WindowCount(1, 1_767_000_001, 5)}
    result = grant([SECOND], stored, now=T, wanted=1)
    assert result.granted == 0 and result.counts == (WindowCount(1, 1_767_000_001, 5),)


def test_every_window_limits_and_the_fullest_decides_when_it_reopens() -> None:
    hour = window_start(T, 3600)
    stored = {1: WindowCount(1, 1_767_000_000, 0), 3600: WindowCount(3600, hour, 10)}
    result = grant([SECOND, HOUR], stored, now=T, wanted=5)
    assert result.granted == 2  # the hour has 2 left, the second 5
    assert result.counts == (WindowCount(1, 1_767_000_000, 2), WindowCount(3600, hour, 12))
    assert result.usable_until == 1_767_000_001
    assert result.reopens_at == hour + 3600
    again = grant([SECOND, HOUR], {c.span_s: c for c in result.counts}, now=T, wanted=1)
    assert again.granted == 0 and again.reopens_at == hour + 3600


def test_no_window_is_a_mistake() -> None:
    with pytest.raises(ValueError):
        grant([], {}, now=T, wanted=1)
