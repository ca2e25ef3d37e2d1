"""What every flow run starts from and what it counts: the run's context (business date,
instant, time zone, calendar, organisation directory) and its per-region counters.

Both are plain values: the context is loaded once per run and handed to every task (frozen, so
parallel tasks share it safely); each task returns its own ``RunCounts`` and the flow merges
them - counts and ids travel between tasks, never rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from tasks.common.directory import Directory
from tasks.rules.calendar import WorkCalendar

# Counts of customers or items without a region (no branch) go under this code.
NO_REGION = "-"


@dataclass(frozen=True)
class RunContext:
    """The inputs every step of a run shares, loaded once per run."""

    as_of: date  # the business date the run is for
    now: datetime  # the run's instant (UTC): stamps what it writes
    timezone: ZoneInfo  # the CRM's zone: local dates of instants
    calendar: WorkCalendar  # the business calendar (working days)
    directory: Directory  # staff, reporting chains, branch and region managers

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.timezone).date()


@dataclass
class RunCounts:
    """Per-region counters (region code -> counter) for the run's artifact and ledger."""

    by_region: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, region: str, key: str, n: int = 1) -> None:
        self.by_region[region][key] += n

    def merge(self, other: RunCounts) -> None:
        for region, counter in other.by_region.items():
            self.by_region[region].update(counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Plain nested dicts (region -> key -> n): what a child flow run returns (JSON)."""
        return {region: dict(counter) for region, counter in self.by_region.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, int]]) -> RunCounts:
        """The inverse of ``as_dict``; refuses anything but region -> key -> integer."""
        counts = cls()
        for region, counter in data.items():
            for key, n in counter.items():
                if not isinstance(n, int) or isinstance(n, bool):
                    raise TypeError(f"count {region}/{key} is not an integer: {n!r}")
                counts.add(region, key, n)
        return counts

    def total(self, key: str) -> int:
        return sum(counter[key] for counter in self.by_region.values())

    def totals(self) -> dict[str, int]:
        """Every key summed over the regions, as flat ledger keys (``skipped:x`` ->
        ``skipped_x``), sorted."""
        total: Counter[str] = Counter()
        for counter in self.by_region.values():
            total.update(counter)
        return {key.replace(":", "_"): n for key, n in sorted(total.items())}
