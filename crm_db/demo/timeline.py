"""Dates of the demo: the as-of date, the transaction window, target months, text encodings.

Days are handled as proleptic ordinals (``date.toordinal()``) in numpy arrays; they become text
only when written, through lookup tables, because formatting millions of ``date`` objects one by
one would dominate the seed's run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

DEMO_AS_OF: Final = date(2026, 11, 23)  # the demo's "today": fixed, so the demo is reproducible
TARGET_MONTHS: Final = 14  # targets and transactions cover the as-of month and the 13 before
HISTORY_YEARS: Final = 8  # first cards were issued over this many years
LOCAL_TZ: Final = ZoneInfo("Asia/Shanghai")

# SQLAlchemy's SQLite storage formats (naive UTC for timestamps); written as-is on PostgreSQL
# too, where the seed's session runs with TimeZone=UTC.
_TS_SUFFIX: Final = ".000000"


def month_start(day: date, back: int = 0) -> date:
    """The first day of the month ``back`` months before ``day``'s month."""
    index = day.year * 12 + (day.month - 1) - back
    return date(index // 12, index % 12 + 1, 1)


def iso_day(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def ts_text(moment: datetime) -> str:
    """A timezone-aware moment as stored: naive UTC text with microseconds."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class Timeline:
    as_of: date
    window_start: date = field(init=False)  # first transaction day
    last_day: date = field(init=False)  # last transaction day: the day before as_of
    history_start: date = field(init=False)
    months: tuple[str, ...] = field(init=False)  # "YYYY-MM", oldest first
    reference: datetime = field(init=False)  # the seed's "now": 08:00 local on as_of

    def __post_init__(self) -> None:
        start = month_start(self.as_of, TARGET_MONTHS - 1)
        object.__setattr__(self, "window_start", start)
        object.__setattr__(self, "last_day", self.as_of - timedelta(days=1))
        object.__setattr__(
            self, "history_start", date(self.as_of.year - HISTORY_YEARS, self.as_of.month, 1)
        )
        months = tuple(
            month_start(self.as_of, back).strftime("%Y-%m")
            for back in range(TARGET_MONTHS - 1, -1, -1)
        )
        object.__setattr__(self, "months", months)
        reference = datetime.combine(self.as_of, time(8, 0), LOCAL_TZ).astimezone(UTC)
        object.__setattr__(self, "reference", reference)
        if self.window_start >= self.last_day:
            raise ValueError("as_of leaves no transaction window")

    @property
    def as_of_ord(self) -> int:
        return self.as_of.toordinal()

    @property
    def window_start_ord(self) -> int:
        return self.window_start.toordinal()

    @property
    def last_day_ord(self) -> int:
        return self.last_day.toordinal()

    @property
    def history_start_ord(self) -> int:
        return self.history_start.toordinal()

    @property
    def reference_text(self) -> str:
        return ts_text(self.reference)

    def month_index(self, ordinals: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Index into ``months`` of each day; -1 for days before the first target month."""
        first = self.window_start_ord
        span = self.as_of_ord + 62 - first
        lookup = np.full(span, -1, dtype=np.int64)
        for i, month in enumerate(self.months):
            year, mon = int(month[:4]), int(month[5:])
            lo = date(year, mon, 1).toordinal() - first
            hi = month_start(date(year, mon, 1), -1).toordinal() - first
            lookup[lo:hi] = i
        offsets = ordinals - first
        inside = (offsets >= 0) & (offsets < span)
        result = np.full(ordinals.shape, -1, dtype=np.int64)
        result[inside] = lookup[offsets[inside]]
        return result


class DayText:
    """Text of every day from ``first`` to ``last`` (ordinals), for vectorised formatting."""

    _times: npt.NDArray[np.object_] | None = None

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self._days = np.array([iso_day(o) for o in range(first, last + 1)], dtype=object)

    @classmethod
    def _time_texts(cls) -> npt.NDArray[np.object_]:
        if cls._times is None:
            cls._times = np.array(
                [
                    f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{_TS_SUFFIX}"
                    for s in range(86_400)
                ],
                dtype=object,
            )
        return cls._times

    def days(self, ordinals: npt.NDArray[np.int64]) -> list[str]:
        return list(self._days[ordinals - self.first].tolist())

    def stamps(self, ordinals: npt.NDArray[np.int64], seconds: npt.NDArray[np.int64]) -> list[str]:
        """Naive-UTC timestamps at ``seconds`` (0..86399) after midnight UTC of each day."""
        text = self._days[ordinals - self.first] + self._time_texts()[seconds]
        return list(text.tolist())
