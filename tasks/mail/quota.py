"""The relay's sending limits (``CRM_SMTP_MAX_PER_SECOND``, ``CRM_SMTP_MAX_PER_HOUR``), shared
by every delivering process through the database.

``relay_quota`` holds one row per relay and window span with the count granted in the current
window. Before it sends, a run takes slots: one short write transaction that locks the rows
(``SELECT ... FOR UPDATE`` on PostgreSQL, the database write lock on SQLite), decides with
``tasks.mail.rules.quota.grant`` and writes the new counts; so however many processes and
workers send through the relay, together they are granted at most the limit in each window.

In a run (``RelayQuota``) each lane takes one slot per SMTP transaction. Slots are claimed a few
at a time (what the waiting lanes need, at most ``2 x smtp_concurrency``), one claim in flight
at once, and a slot is used only to start a transaction that can be expected to end inside its
window (the longest recent transaction is kept free at the window's end), so the relay also
sees at most the limit in each window. When a window is full the lanes wait for the next one
if it starts within ``QUOTA_WAIT_MAX_S``; otherwise (the hour is used up) the run stops and
its rows go back to pending, unattempted, for a later run: deferred, never failed.

Slots claimed but not used (the run ended, the window passed) are not given back: the windows
err on the side of sending less.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_core.settings import Settings
from crm_db.models import RelayQuota as RelayQuotaRow
from tasks.common.write_lock import for_update, write_transaction
from tasks.mail.rules.quota import Grant, Window, WindowCount, grant, window_start

_QUOTA = cast(Table, RelayQuotaRow.__table__)

# A full window that starts again within this long is waited for; a longer wait ends the run.
QUOTA_WAIT_MAX_S = 5.0
# The end of each window kept free of new transactions: twice the longest of the last few
# transactions (slot to reply), never more than half the shortest window; before any was timed:
FIRST_GUARD_S = 0.1
RECENT_SENDS = 32


def relay_key(settings: Settings) -> str:
    return f"{settings.smtp_host.lower()}:{settings.smtp_port}"


def relay_windows(settings: Settings) -> list[Window]:
    """The configured limits as windows (empty: unlimited)."""
    windows = []
    if settings.smtp_max_per_second is not None:
        windows.append(Window(1, settings.smtp_max_per_second))
    if settings.smtp_max_per_hour is not None:
        windows.append(Window(3600, settings.smtp_max_per_hour))
    return windows


def _insert_missing(conn: Connection, relay: str, windows: Sequence[Window]) -> None:
    rows = [{"relay": relay, "span_s": w.span_s, "window_start": 0, "used": 0} for w in windows]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(_QUOTA).on_conflict_do_nothing(), rows)


def claim_slots(
    bind: Engine | Connection,
    *,
    relay: str,
    windows: Sequence[Window],
    now: datetime,
    wanted: int,
) -> Grant:
    """Take up to ``wanted`` slots of ``relay``'s windows at ``now``, in one short write
    transaction (rows locked in span order, so two claimers never deadlock)."""
    with write_transaction(bind) as conn:
        _insert_missing(conn, relay, windows)
        statement = (
            select(_QUOTA.c.span_s, _QUOTA.c.window_start, _QUOTA.c.used)
            .where(_QUOTA.c.relay == relay, _QUOTA.c.span_s.in_([w.span_s for w in windows]))
            .order_by(_QUOTA.c.span_s)
        )
        stored = {
            row.span_s: WindowCount(row.span_s, int(row.window_start), int(row.used))
            for row in conn.execute(for_update(statement))
        }
        decision = grant(windows, stored, now=now.timestamp(), wanted=wanted)
        for count in decision.counts:
            if stored.get(count.span_s) != count:
                conn.execute(
                    update(_QUOTA)
                    .where(_QUOTA.c.relay == relay, _QUOTA.c.span_s == count.span_s)
                    .values(window_start=count.start, used=count.used)
                )
    return decision


Claimer = Callable[[int], Awaitable[Grant]]


class RelayQuota:
    """A run's slots of the relay's windows (see the module docstring). ``claim(wanted)``
    runs ``claim_slots`` where the run's database writes run (``deliver._Run``)."""

    def __init__(
        self, claim: Claimer, *, windows: Sequence[Window], now: Callable[[], datetime], cap: int
    ) -> None:
        self._claim = claim
        self._windows = list(windows)
        self._now = now
        self._cap = cap
        self._slots = 0
        self._until = 0.0  # monotonic: the end of the windows the slots belong to
        self._reopens = 0.0  # monotonic: a full window starts afresh (0: none known)
        self._claiming: asyncio.Task[Grant] | None = None
        self._waiting = 0
        self._durations: deque[float] = deque(maxlen=RECENT_SENDS)
        self.full_until: datetime | None = None  # set when the run must stop for the quota
        self.waits = 0  # times a lane waited for a window to start afresh

    def timed(self, seconds: float) -> None:
        """One SMTP transaction took this long (from its slot to its reply)."""
        self._durations.append(seconds)

    def _guard(self) -> float:
        longest = 2 * max(self._durations) if self._durations else FIRST_GUARD_S
        return min(longest, min(w.span_s for w in self._windows) / 2)

    async def take(self) -> bool:
        """One slot for a transaction starting now (the caller starts it without awaiting
        anything else first): True, possibly after waiting for the next window; False when the
        quota is full for longer than ``QUOTA_WAIT_MAX_S`` (the run should stop and defer its
        rows)."""
        self._waiting += 1
        try:
            while self.full_until is None:
                now = time.monotonic()
                if self._slots > 0 and now < self._until - self._guard():
                    self._slots -= 1
                    return True
                if now < self._reopens:
                    self.waits += 1
                    await asyncio.sleep(self._reopens - now)
                    continue
                # Too late in the window for a slot to be used: wait for the next one rather
                # than claim slots that would lapse.
                epoch = self._now().timestamp()
                span = min(w.span_s for w in self._windows)
                left = window_start(epoch, span) + span - epoch
                if left <= self._guard():
                    await asyncio.sleep(left)
                    continue
                if self._claiming is None:
                    self._claiming = asyncio.create_task(self._claim_more())
                task = self._claiming
                await asyncio.shield(task)
                if self._claiming is task:
                    self._claiming = None
            return False
        finally:
            self._waiting -= 1

    async def _claim_more(self) -> Grant:
        wanted = min(self._cap, max(1, self._waiting))
        result = await self._claim(wanted)
        mono, at = time.monotonic(), self._now().timestamp()
        self._slots = result.granted
        self._until = mono + (result.usable_until - at)
        if result.reopens_at is not None:
            wait = result.reopens_at - at
            if wait <= QUOTA_WAIT_MAX_S:
                # Lanes left without a slot wait for it instead of claiming in vain.
                self._reopens = mono + wait
            elif result.granted == 0:
                self.full_until = datetime.fromtimestamp(result.reopens_at, self._now().tzinfo)
        return result

    def describe(self) -> str:
        return ", ".join(
            f"{w.limit} per {'second' if w.span_s == 1 else 'hour'}" for w in self._windows
        )
