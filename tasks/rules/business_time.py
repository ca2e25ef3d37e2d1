"""Business-minute arithmetic: SLA clocks that run only in a calendar's working hours.

Pure: the hours, the time zone and the day-level ``WorkCalendar`` come in as one frozen
``BusinessHours`` value (``tasks.common.calendars`` loads it from ``business_calendars``).

Semantics (tested against a minute-by-minute brute force in tests/tasks/rules):

- Working time on a working day (``WorkCalendar.is_working_day`` of the *local* date: weekly
  pattern, holidays, make-up days) is ``[work_start, break_start)`` and ``[break_end, work_end)``
  in local wall-clock time; ``work_end`` 00:00 means midnight at the end of the day.
- A local wall time becomes an instant by one rule: *the earliest instant at which the local
  clock reads that time or later*. So in a daylight-saving gap (02:30 on a spring-forward night)
  it is the instant the clock jumps (03:00 new time), and a time that occurs twice (fall-back)
  is its first occurrence. Each working interval is the real time between its two instants:
  business minutes are elapsed minutes, never wall-clock differences.
- ``add_business_minutes(start, m)`` is the earliest instant at which ``m`` business minutes have
  elapsed since ``start``. A start outside working hours counts from the next opening; a result
  landing exactly on the end of an interval stays there (18:00, not 09:00 next working day; 12:00
  at a break, not 13:00); ``m == 0`` returns ``start`` itself.
- ``business_minutes_between(start, end)`` counts the business time in ``[start, end)`` and
  floors it to whole minutes (seconds count: 09:00:30 to 09:02 is 1 minute); it is negative when
  ``end`` is before ``start``. ``between(s, add(s, m)) == m`` for every minute-aligned case.
- 24x7 (``BusinessHours.twenty_four_seven()``): every instant counts, in any zone.

Cost: O(days spanned): each day is looked at once and a whole day is skipped by its length,
never minute by minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tasks.rules.calendar import MAX_SEARCH_DAYS, CalendarError, WorkCalendar

MIDNIGHT = time(0, 0)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)


class BusinessHoursError(ValueError):
    """Working hours that cannot be right (end before start, a break outside the hours)."""


def _minutes(value: time, *, end_of_day: bool = False) -> int:
    minutes = value.hour * 60 + value.minute
    return 24 * 60 if end_of_day and minutes == 0 else minutes


@dataclass(frozen=True)
class BusinessHours:
    """One calendar's working time: local hours in ``zone`` on the working days of ``days``."""

    days: WorkCalendar
    zone: ZoneInfo
    work_start: time = time(9, 0)
    work_end: time = time(18, 0)  # 00:00 = midnight at the end of the day
    break_start: time | None = None
    break_end: time | None = None
    code: str = ""
    # Local wall-clock segments of a working day, as (start, end) offsets from local midnight.
    segments: tuple[tuple[timedelta, timedelta], ...] = field(init=False, repr=False)
    # Memo of ``_intervals`` by local date (a value's intervals never change); bounded.
    _memo: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for value in (self.work_start, self.work_end, self.break_start, self.break_end):
            if value is not None and (value.second or value.microsecond or value.tzinfo):
                raise BusinessHoursError(f"working hours are whole minutes, got {value}")
        start = _minutes(self.work_start)
        end = _minutes(self.work_end, end_of_day=True)
        if not start < end:
            raise BusinessHoursError(f"work_end {self.work_end} is not after {self.work_start}")
        pieces = [(start, end)]
        if (self.break_start is None) != (self.break_end is None):
            raise BusinessHoursError("break_start and break_end are set together or not at all")
        if self.break_start is not None and self.break_end is not None:
            b_start, b_end = _minutes(self.break_start), _minutes(self.break_end)
            if not start < b_start < b_end < end:
                raise BusinessHoursError(
                    f"break {self.break_start}-{self.break_end} must lie inside "
                    f"{self.work_start}-{self.work_end}"
                )
            pieces = [(start, b_start), (b_end, end)]
        object.__setattr__(
            self,
            "segments",
            tuple((timedelta(minutes=a), timedelta(minutes=b)) for a, b in pieces),
        )

    @classmethod
    def twenty_four_seven(cls, zone: ZoneInfo | None = None) -> BusinessHours:
        """The 24x7 clock: every day, midnight to midnight (elapsed time, in any zone)."""
        return cls(WorkCalendar.always_open(), zone or ZoneInfo("UTC"), MIDNIGHT, MIDNIGHT)


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The earliest instant (UTC) at which the clock of ``zone`` reads ``wall`` (naive) or later.

    A time that exists is its first occurrence (fold=0); a time in a gap is the moment of the
    jump, found by bisecting the (at most a few hours wide) window between its two readings.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the jump (an instant before
    # the jump), fold=0 with the one before it (an instant after).
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


_MEMO_DAYS = 4096


def _intervals(hours: BusinessHours, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The working intervals of local date ``day`` as UTC instants (none on a day off),
    memoised on ``hours``: a check walks the same few weeks for thousands of complaints."""
    memo = hours._memo
    found = memo.get(day)
    if found is None:
        if len(memo) >= _MEMO_DAYS:
            memo.clear()
        found = memo[day] = tuple(_day_intervals(hours, day))
    return found


def _day_intervals(hours: BusinessHours, day: date) -> Iterator[tuple[datetime, datetime]]:
    if not hours.days.is_working_day(day):
        return
    midnight = datetime(day.year, day.month, day.day)
    start_of_day = local_instant(midnight, hours.zone)
    if local_instant(midnight + _DAY, hours.zone) - start_of_day == _DAY:
        # No clock change that day (the common case): wall offsets are elapsed offsets.
        for start, end in hours.segments:
            yield start_of_day + start, start_of_day + end
        return
    for start, end in hours.segments:
        a = local_instant(midnight + start, hours.zone)
        b = local_instant(midnight + end, hours.zone)
        if b > a:  # an interval inside a DST gap is empty
            yield a, b


def _local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def add_business_minutes(start: datetime, minutes: int, hours: BusinessHours) -> datetime:
    """The earliest instant at which ``minutes`` business minutes have passed since ``start``;
    in ``start``'s time zone."""
    _require_aware(start, "start")
    if minutes < 0:
        raise ValueError(f"minutes must not be negative, got {minutes}")
    if minutes == 0:
        return start
    origin = start.astimezone(UTC)
    remaining = timedelta(minutes=minutes)
    day = _local_date(origin, hours.zone)
    idle_days = 0
    while True:
        worked = False
        for a, b in _intervals(hours, day):
            begin = max(a, origin)
            if b <= begin:
                continue
            worked = True
            if remaining <= b - begin:
                return (begin + remaining).astimezone(start.tzinfo)
            remaining -= b - begin
        idle_days = 0 if worked else idle_days + 1
        if idle_days > MAX_SEARCH_DAYS:
            raise CalendarError(f"calendar {hours.code!r} has no working time after {day}")
        day += _DAY


def business_minutes_between(start: datetime, end: datetime, hours: BusinessHours) -> int:
    """Whole business minutes in ``[start, end)`` (floored; negative if ``end < start``)."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    if end < start:
        return -business_minutes_between(end, start, hours)
    low, high = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta(0)
    day, last = _local_date(low, hours.zone), _local_date(high, hours.zone)
    while day <= last:
        for a, b in _intervals(hours, day):
            overlap = min(b, high) - max(a, low)
            if overlap > timedelta(0):
                total += overlap
        day += _DAY
    return total // _MINUTE


def working_minutes_on(day: date, hours: BusinessHours) -> int:
    """Business minutes of local date ``day`` (0 on a day off; DST days may differ)."""
    return sum((b - a) // _MINUTE for a, b in _intervals(hours, day))
