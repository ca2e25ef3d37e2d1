"""Draining the outbox: claim due rows, render and build each message, send it over a small pool
of persistent SMTP connections, and write each outcome back right after the server's reply.

The pipeline, in one event loop:

* a producer claims batches (``claim.claim_leases``, one short write transaction: in a DB
  thread on PostgreSQL, in the loop thread between two group writes on SQLite, whose one write
  lock the marks need too; the rows' details are then read in the DB thread) and claims the
  next batch while the current one is still being sent (low-water mark), so sending
  never waits for a whole batch. Each claim is sized to what the lanes can start before its
  lease runs short, at half the send rate measured so far, after the rows already held (one
  small claim first, until the rate is known), and the leases of held rows are renewed while
  they wait (``renew_leases``): rows are not claimed only to be released;
* the producer decides what needs no rendering (unknown kind, consent suppression) and adds
  the unsubscribe link, then hands chunks of rows to a stdlib process pool
  (``tasks.mail.build.BuildExecutor``: render + build + serialise, the biggest CPU cost per
  message) so that building overlaps claiming and sending; built bytes join the send queue.
  Small runs, a one-CPU machine, ``CRM_BUILD_WORKERS=0``, or a worker that died or hung make
  the lanes build in the loop thread instead (the rows of a lost chunk are released unsent),
  and so do the chunks claimed while the workers are still starting;
* ``smtp_concurrency`` lanes each take the next row (building it first if no worker did), a
  slot of the relay's quota when limits are set (``tasks.mail.quota``: shared by every run
  through the database; a full hour stops the run and defers the rest), and send it on their
  own connection;
* a settler writes outcomes with group commit: every reply handled in one turn of the event
  loop goes into one short transaction (``executemany``) at the end of that turn (SQLite: in
  the loop thread; PostgreSQL: in a thread of its own, the replies that come in meanwhile
  forming the next group; see ``_Settler``).

The trade-off in that last step: a transaction per message makes the window between the
server's 250 and the durable "sent" mark one commit long, but costs a commit per message; a
fixed batch of N (or a timer) is cheap but leaves up to N accepted-but-unmarked messages to be
sent again after a crash. Group commit per loop turn keeps the window at one commit (plus the
replies that arrive during it), and the number of transactions per message falls as the rate
rises, since more replies are waiting at each turn. On SQLite the flush runs in the loop thread
before any further reply is processed, and a build or a claim in the loop thread writes the
waiting marks first. A lane whose message was accepted sends the next message's MAIL and RCPT
while the mark commits, but not its DATA before the mark is durable (``_Settler.durable``,
awaited by ``SmtpLane.send`` after RCPT: against a relay 20 ms away the commit then overlaps
two round trips instead of adding to each message), and lanes start no send while a failed
write waits for its retry. So at any instant each lane holds at most one accepted message
without its durable mark: a crash
duplicates at most ``smtp_concurrency`` messages, those whose 250 came in the last commit
(``DeliveryReport.mark_delay_max_ms`` is the longest wait seen in a run). Full collections of
the garbage collector skip the objects that existed at the start (``gc.freeze``): over a
process's imports they stopped the loop for 50-250 ms. On SQLite the settlement connection
checkpoints the WAL itself, when no SMTP transaction is in flight, instead of in whichever mark's
commit crosses SQLite's automatic threshold (``_Settler.checkpoint``). Duplicates keep their
Message-ID, so receivers can tell.

``attempts`` counts SMTP transactions: a claim counts nothing, each outcome of a transaction
writes the count. A reply to DATA that never comes (``smtp_data_timeout_s``, 10 minutes by
default, as RFC 5321 4.5.3.2.6 says) is an unknown outcome: the server may have the message,
so it is retried once, after ``outbox_unknown_retry_s``, and counted apart (``unknown``).

No database transaction is ever open while SMTP I/O is in flight: claims and settlements are
separate, short transactions. A claim's lease outlives any single send (``outbox_lease_s`` >=
``smtp_timeout_s`` + ``smtp_data_timeout_s`` + 2 s, enforced by the settings) and a lane never
starts a send that could run past its row's lease, so a live sender's rows are not reclaimed
under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from crm_core.masking import mask_email, mask_text
from crm_core.settings import Settings
from crm_db.enums import OutboxStatus
from crm_db.session import SQLITE_WAL_CHECKPOINT_PAGES
from tasks.mail.build import (
    CHUNK,
    MIN_ROWS,
    BuildExecutor,
    BuildJob,
    BuildLost,
    build_one,
    build_workers,
)
from tasks.mail.claim import ClaimedMessage, Lease, claim_leases, load_claimed, renew_leases
from tasks.mail.classify import (
    UNKNOWN_PREFIX,
    Disposition,
    RelayRefusals,
    SendFailure,
    Stage,
    client_refusal,
    decide,
    is_permanent,
    next_attempt_at,
    refusal_message,
    suppression_reason,
)
from tasks.mail.kinds import KINDS
from tasks.mail.quota import RelayQuota, claim_slots, relay_key, relay_windows
from tasks.mail.render import _settings_defaults
from tasks.mail.rules.quota import Grant
from tasks.mail.settle import Settlement, UndeliverableAddress, apply_settlements
from tasks.mail.smtp_pool import Accepted, SmtpConfigurationError, SmtpLane, SmtpTarget

log = logging.getLogger(__name__)

T = TypeVar("T")

# A lane retries a refused or dropped connection this many times (seconds between tries)
# before giving up for this run; a whole outage then ends the run with rows left pending.
CONNECT_RETRY_DELAYS = (0.25, 1.0, 2.0)
# A send is started only if it can finish (total timeout) this long before the row's lease ends.
LEASE_MARGIN_S = 1.0
# Claims are sized to this share of the measured send rate over the usable lease.
CLAIM_RATE_SHARE = 0.5
# How a run stopped by the relay's quota says so (``DeliveryReport.stopped``): not an outage.
QUOTA_STOP = "relay quota full"
# Per-row warnings logged per run before the rest go to debug level.
ROW_WARNINGS = 20
# Settlement writes that hit a locked or briefly unavailable database are retried this often.
SETTLE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
# SQLite: the settlement connection checkpoints the WAL after this many of its write
# transactions (marks, claims, renewals), at a moment when no SMTP transaction is in flight
# (see ``_Settler.checkpoint``). About SQLite's automatic threshold (crm_db.session) at ~10
# pages a transaction.
SQLITE_CHECKPOINT_EVERY = 1000

# A queued row with its message bytes, the settlement that replaces sending, or None when the
# lane must build it.
Entry = tuple[ClaimedMessage, bytes | Settlement | None]


@dataclass
class DeliveryReport:
    """What one run did, as counts (no addresses, no rows)."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    released: int = 0
    deferred: int = 0  # released unattempted: the relay's quota was full (tasks.mail.quota)
    unknown: int = 0  # no reply to DATA: retried once, after outbox_unknown_retry_s
    flagged: int = 0
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    stopped: str | None = None  # why the run ended before the outbox was drained
    duration_s: float = 0.0
    mark_delay_max_ms: float = 0.0  # longest wait from a server's 250 to its durable mark
    checkpoints: int = 0  # SQLite WAL checkpoints run with no SMTP transaction in flight
    checkpoint_max_ms: float = 0.0

    def outage(self) -> str | None:
        """Why this run counts as failed, in one line, or None: the relay could not be reached
        (or stopped answering), or every SMTP transaction failed transiently. Rows stay
        pending either way; failing the run is what makes the alerts on failed runs fire."""
        if self.stopped is not None and self.stopped.startswith("smtp unavailable"):
            return f"SMTP relay unreachable, {self.claimed - self.sent} rows left pending: " + (
                self.stopped.removeprefix("smtp unavailable: ")
            )
        if self.sent == 0 and self.failed == 0 and self.retried + self.unknown > 0:
            return (
                f"every SMTP attempt failed transiently ({self.retried + self.unknown} rows "
                "left pending for retry): the relay is refusing mail"
            )
        return None

    def counts(self) -> dict[str, int]:
        return {
            "claimed": self.claimed,
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "released": self.released,
            "deferred": self.deferred,
            "unknown": self.unknown,
            "flagged": self.flagged,
        }

    def kind_counts(self) -> dict[str, dict[str, int]]:
        return {kind: dict(counter) for kind, counter in sorted(self.by_kind.items())}


class RunClock:
    """The run's notion of "now": starts at the ``now`` passed in and advances in real time,
    so tests can pin the start while leases and backoff still see time pass during a run."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)


def _short(exc: BaseException) -> str:
    """An error for a log line or report: the driver's message (SQLAlchemy's own text repeats
    the statement and its parameters, which can hold addresses), masked and bounded."""
    orig = getattr(exc, "orig", None)
    text = f"{exc.__class__.__name__}: {orig if orig is not None else exc}"
    return mask_text(text)[:300]


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist when a run starts (imported modules, Prefect, SQLAlchemy:
    tens of thousands) out of the cyclic garbage collector's full collections while it runs
    (``gc.freeze``), and give them back afterwards (``gc.unfreeze``), so nothing is kept for
    good. A full collection over them stops the event loop for 50-150 ms (measured on a loaded
    machine), and every 250 read during such a pause waits that long for its mark; frozen, a
    collection scans only what the run itself creates. The collection before freezing is paid
    once, before the first send."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def lease_owner() -> str:
    """Who holds a claim: host, process and run, so a stale claim can be traced."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Settler:
    """Group commit of settlements (see the module docstring).

    The first outcome of a loop iteration schedules a flush for the end of that iteration
    (``call_soon``), so every reply processed in the same iteration shares one transaction and
    the delay before the durable mark is one commit.

    Where the write runs depends on the database. SQLite: in the loop thread. Its commit is a
    local file write (well under 1 ms), and handing it to a thread would cost GIL hand-offs
    (5 ms switch interval each while the loop is busy building messages), measured 10-25 ms per
    mark under load. PostgreSQL: in a thread of its own (``executor``), one write at a time. Its
    commit is a round trip to the server plus the server's WAL flush (1-5 ms, far more on a
    loaded machine), and done in the loop thread it stopped every lane for that long, once per
    group: against a relay 20 ms away, whose replies arrive spread out so that nearly every
    mark is a group of one, end to end fell to 0.45 of the raw ceiling. In the thread the loop
    goes on reading replies while a group commits, and the outcomes that arrive meanwhile form
    the next group, written as soon as this one is done (the lane of each still waits for its
    own mark before its next send).

    On SQLite the connection never checkpoints the WAL on its own: SQLite's automatic
    checkpoint runs inside the commit that crosses its threshold, copying and syncing up to
    40 MB there (69 ms measured on a quiet machine, 249 ms for one mark under load), and any
    250 read meanwhile waits that long for its mark. ``checkpoint`` runs it instead when it is
    due and no SMTP transaction is in flight (the lanes wait for it before sending), so no
    accepted message waits on it.
    """

    def __init__(
        self,
        engine: Engine,
        owner: str,
        *,
        checkpoint_every: int = SQLITE_CHECKPOINT_EVERY,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        # Where group writes run: None for the loop thread (SQLite), else a one-thread executor.
        self._executor = executor
        self._in_flight: asyncio.Future[None] | None = None  # the group being written (thread)
        self._checkpoint_every = checkpoint_every
        self._writes = 0  # write transactions since the last checkpoint (SQLite)
        self.checkpoints = 0
        self.checkpoint_max_s = 0.0
        self._conn: Connection | None = None  # held for the run: no pool checkout or ping per mark
        self._owner = owner
        self._pending: list[Settlement] = []
        self._flags: list[UndeliverableAddress] = []
        self._scheduled = False
        self._failures = 0
        self._oldest: float | None = None  # monotonic time of the oldest unwritten outcome
        self._added = 0  # outcomes handed in so far; each one's number is its ticket
        self._durable = 0  # outcomes durably written (tickets <= this one; writes keep order)
        self._waiters: list[asyncio.Future[None]] = []
        self.max_delay_s = 0.0
        self.transactions = 0
        self.error: BaseException | None = None

    @property
    def retrying(self) -> bool:
        """A write failed and waits to be retried: outcomes are piling up unrecorded."""
        return self._failures > 0 and self.error is None

    def add(self, settlement: Settlement, flag: UndeliverableAddress | None = None) -> int:
        """Queue an outcome for the next group write; returns its ticket (see ``durable``)."""
        self._added += 1
        self._pending.append(settlement)
        if self._oldest is None:
            self._oldest = time.monotonic()
        if flag is not None:
            self._flags.append(flag)
        self._schedule()
        return self._added

    def _schedule(self) -> None:
        # A group being written in the thread schedules the next one when it is done.
        if not self._scheduled and self._in_flight is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def durable(self, ticket: int) -> None:
        """Wait until the outcome with ``ticket`` is written (or writing has failed for good:
        ``error``). The group write was scheduled when the outcome came in, so this usually
        takes one turn of the loop; while a failed write waits for its retry, it takes as long
        as the retries (``SETTLE_RETRY_DELAYS``), no longer."""
        while self._durable < ticket and self.error is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def write_now(self) -> None:
        """Write the outcomes waiting for this turn's group write at once: called before CPU
        work in the loop thread (building a message) that would otherwise delay them. Not
        while a failed write waits for its retry."""
        if (self._pending or self._flags) and not self.retrying and self.error is None:
            self._flush()

    def claim(self, *, now: datetime, lease_until: datetime, limit: int) -> list[Lease]:
        """Claim rows on the settlement connection, in the loop thread (SQLite: see
        ``_Run.produce``)."""
        self.write_now()  # the marks of this turn first: a claim must not delay them
        conn = self._connection()
        try:
            leases = claim_leases(
                conn, now=now, lease_until=lease_until, owner=self._owner, limit=limit
            )
        except OperationalError:
            self.close()
            raise
        self._writes += 1
        return leases

    def write(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """``fn(conn, **kwargs)``, a short write transaction, on the settlement connection in
        the loop thread (SQLite: see ``_Run.produce``), after this turn's marks."""
        self.write_now()
        conn = self._connection()
        try:
            result = fn(conn, **kwargs)
        except OperationalError:
            self.close()
            raise
        self._writes += 1
        return result

    def renew(self, *, lease_until: datetime) -> int:
        """``claim.renew_leases`` on the settlement connection, in the loop thread (SQLite)."""
        self.write_now()
        conn = self._connection()
        try:
            renewed = renew_leases(conn, owner=self._owner, lease_until=lease_until)
        except OperationalError:
            self.close()
            raise
        self._writes += 1
        return renewed

    @property
    def checkpoint_due(self) -> bool:
        """SQLite: enough has been written since the last checkpoint that one should run
        before the next send starts."""
        return self._sqlite and self._writes >= self._checkpoint_every and self.error is None

    def checkpoint(self) -> None:
        """Checkpoint the WAL now (SQLite; PASSIVE: other processes' readers and writers are
        not blocked). The caller makes sure no SMTP transaction is in flight: the marks
        waiting are written first, and nothing can be accepted while it runs."""
        if not self._sqlite or self.error is not None:
            return
        self.write_now()
        started = time.monotonic()
        conn = self._connection()
        try:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            conn.commit()
        except OperationalError:
            # Not fatal: the WAL only grows until the next checkpoint (or the next writer's).
            log.warning("outbox: checkpointing the SQLite WAL failed", exc_info=True)
            self.close()
        self._writes = 0
        self.checkpoints += 1
        self.checkpoint_max_s = max(self.checkpoint_max_s, time.monotonic() - started)

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            if self._sqlite:
                # Per connection: this one checkpoints only in ``checkpoint``.
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
                conn.commit()
            self._conn = conn
        return self._conn

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        self._scheduled = False
        if self._in_flight is not None or self.error is not None:
            return
        if not (self._pending or self._flags):
            return
        batch, self._pending = self._pending, []
        flags, self._flags = self._flags, []
        oldest, self._oldest = self._oldest, None
        upto = self._added  # the ticket of the last outcome in this group
        if self._executor is None:
            try:
                self._apply(batch, flags)
            except Exception as exc:
                self._failed(batch, flags, oldest, exc)
                return
            self._written(upto, oldest)
            return
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._apply, batch, flags
        )
        self._in_flight = future
        future.add_done_callback(partial(self._thread_done, batch, flags, oldest, upto))

    def _thread_done(
        self,
        batch: list[Settlement],
        flags: list[UndeliverableAddress],
        oldest: float | None,
        upto: int,
        future: asyncio.Future[None],
    ) -> None:
        """A group written in the thread is done (in the loop thread): wake its lanes, then
        start the next group with what came in meanwhile."""
        self._in_flight = None
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self._failed(batch, flags, oldest, exc)
            return
        self._written(upto, oldest)
        if self._pending or self._flags:
            self._schedule()

    def _failed(
        self,
        batch: list[Settlement],
        flags: list[UndeliverableAddress],
        oldest: float | None,
        exc: BaseException,
    ) -> None:
        # The group goes back in front of whatever came in since, in order.
        self._pending[:0] = batch
        self._flags[:0] = flags
        if oldest is not None:
            self._oldest = oldest
        if not isinstance(exc, OperationalError):
            # Anything else is a bug or a schema problem: stop the run (the lanes check
            # ``error``) and raise it at the end, rather than log it from a loop callback.
            self.error = exc
            self._wake()
            return
        # A locked or briefly unreachable database: keep the marks and try again shortly.
        if self._failures >= len(SETTLE_RETRY_DELAYS):
            self.error = exc
            self._wake()
            return
        delay = SETTLE_RETRY_DELAYS[self._failures]
        self._failures += 1
        log.warning("outbox: settling %d rows failed; retrying in %.1f s", len(batch), delay)
        self._scheduled = True
        asyncio.get_running_loop().call_later(delay, self._flush)

    def _written(self, upto: int, oldest: float | None) -> None:
        self._failures = 0
        self.transactions += 1
        self._writes += 1
        self._durable = upto
        self._wake()
        if oldest is not None:
            self.max_delay_s = max(self.max_delay_s, time.monotonic() - oldest)

    def _apply(self, batch: list[Settlement], flags: list[UndeliverableAddress]) -> None:
        conn = self._connection()
        try:
            apply_settlements(conn, batch, owner=self._owner, undeliverable=flags)
        except OperationalError:
            self.close()  # the next attempt starts on a fresh connection
            raise

    async def flush_all(self) -> None:
        """Write whatever is left (end of run): wait for the group being written, then write
        the rest at once; raises if the database stayed unavailable."""
        while self._in_flight is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._in_flight)
            await asyncio.sleep(0)  # let its done callback run
        if self.error is None and (self._pending or self._flags):
            batch, self._pending = self._pending, []
            flags, self._flags = self._flags, []
            oldest, self._oldest = self._oldest, None
            self._apply(batch, flags)
            self._written(self._added, oldest)
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                if self._sqlite:
                    # Back to the pool as every other connection is (crm_db.session).
                    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")
                    conn.commit()
                conn.close()
            except Exception:  # closing a broken connection must not hide the real error
                log.debug("outbox: closing the settlement connection failed", exc_info=True)


def _pending_again(
    item: ClaimedMessage,
    now: datetime,
    failure: SendFailure,
    text: str,
    next_attempt_at: datetime,
    *,
    unknown: bool = False,
) -> Settlement:
    """Back to pending for another try at ``next_attempt_at`` (a retry, or an unknown outcome's
    one more try), with the server's answer and the row's short history."""
    return Settlement(
        id=item.id,
        status=OutboxStatus.PENDING,
        at=now,
        smtp_response=failure.describe(),
        last_error=text,
        next_attempt_at=next_attempt_at,
        attempts=item.attempts,
        unknown=unknown,
    )


class _Run:
    """State shared by the producer and the lanes of one delivery run."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: RunClock,
        limit: int | None,
        rng: random.Random,
        owner: str,
        claim_executor: ThreadPoolExecutor,
        settler: _Settler,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.limit = limit
        self.rng = rng
        self.owner = owner
        self.claim_executor = claim_executor
        self.settler = settler
        self.report = DeliveryReport()
        self.queue: deque[Entry] = deque()
        self.pool: BuildExecutor | None = None
        self.pool_workers = 0  # wanted; decided by the caller
        self.pool_defaults: tuple[str, str] | None = None
        self.in_flight = 0  # rows handed to build workers and not yet back
        self.slot_freed = asyncio.Event()
        self.item_added = asyncio.Event()
        self.need_more = asyncio.Event()
        self.lanes_done = asyncio.Event()  # every lane has ended, or the run is stopping
        self.producer_done = False
        self.stopping = False
        self.fatal: BaseException | None = None
        self.live_lanes = 0
        self.row_warnings = 0
        batch = settings.outbox_batch_size
        self.low_water = max(batch // 2, 2 * settings.smtp_concurrency)
        # The longest one send can take: the command timeout plus the wait after the data.
        self.send_budget = timedelta(
            seconds=settings.smtp_timeout_s + settings.smtp_data_timeout_s + LEASE_MARGIN_S
        )
        # The last renewal of our leases: (when it ran, until when). Rows whose lease was still
        # running when it ran are held until then.
        self.renewed: tuple[datetime, datetime] | None = None
        self.sends_done = 0  # transactions finished by the lanes, for the measured send rate
        self.sending = 0  # lanes between starting a transaction and its durable outcome
        self.sending_since: float | None = None  # monotonic time of the first send
        self.sender = settings.mail_from
        self.key = settings.signing_key()
        self.base_url = settings.public_base_url
        # Permanent RCPT refusals held back while they may be the relay refusing us.
        self.refusals: RelayRefusals[ClaimedMessage] = RelayRefusals()
        self.quota: RelayQuota | None = None  # the relay's limits, when configured
        self.quota_full = False  # the run stopped for the quota: unsent rows are deferred

    # -- coordination -------------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.report.stopped = reason
        self.item_added.set()
        self.need_more.set()
        self.lanes_done.set()

    async def next_item(self) -> Entry | None:
        while True:
            if self.settler.error is not None:
                self.stop(f"database error while marking rows: {_short(self.settler.error)}")
            if self.stopping:
                return None
            if self.queue:
                item = self.queue.popleft()
                if len(self.queue) <= self.low_water:
                    self.need_more.set()
                return item
            if self.producer_done and self.in_flight == 0:
                return None
            self.item_added.clear()
            await self.item_added.wait()

    def lease_end(self, item: ClaimedMessage) -> datetime:
        """Until when this run holds ``item``: its claim's lease, or the last renewal if the
        lease was still ours when that ran."""
        if self.renewed is not None:
            at, until = self.renewed
            if item.lease_until > at:
                return max(item.lease_until, until)
        return item.lease_until

    async def renew_leases(self) -> None:
        """Keep the leases of the rows this run holds from running out while they wait their
        turn (a loaded machine can halve the send rate the claims were sized by): extend them
        all, a quarter of the usable lease after the last claim or renewal. A run that dies
        stops renewing, and its rows come back one lease later, as before."""
        settings = self.settings
        period = max(0.05, (settings.outbox_lease_s - self.send_budget.total_seconds()) / 4)
        while not self.lanes_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lanes_done.wait(), period)
            if self.lanes_done.is_set() or self.stopping or not (self.queue or self.in_flight):
                continue
            now = self.clock.now()
            until = now + timedelta(seconds=settings.outbox_lease_s)
            if self.engine.dialect.name == "sqlite":
                self.settler.renew(lease_until=until)  # as claims: see ``produce``
            else:
                await self.in_thread(
                    renew_leases, bind=self.engine, owner=self.owner, lease_until=until
                )
            self.renewed = (now, until)

    async def in_thread(self, fn: Any, /, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.claim_executor, partial(fn, **kwargs))

    def log_row(self, message: str, *args: object) -> None:
        """A warning about one row; after ``ROW_WARNINGS`` of them, debug level (a bad relay
        must not write a warning per message of a 100k batch; the counts say how many)."""
        self.row_warnings += 1
        level = logging.WARNING if self.row_warnings <= ROW_WARNINGS else logging.DEBUG
        if self.row_warnings == ROW_WARNINGS + 1:
            log.warning("outbox: more row failures this run; see the counts and last_error")
        log.log(level, message, *args)

    # -- outcomes -----------------------------------------------------------------------------

    def settle(
        self,
        item: ClaimedMessage,
        settlement: Settlement,
        flag: UndeliverableAddress | None = None,
    ) -> int:
        report = self.report
        if settlement.status is OutboxStatus.SENT:
            report.sent += 1
            outcome = "sent"
        elif settlement.status is OutboxStatus.PENDING and settlement.deferred:
            report.deferred += 1
            outcome = "deferred"
        elif settlement.status is OutboxStatus.PENDING and settlement.release:
            report.released += 1
            outcome = "released"
        elif settlement.status is OutboxStatus.PENDING and settlement.unknown:
            report.unknown += 1
            outcome = "unknown"
        elif settlement.status is OutboxStatus.PENDING:
            report.retried += 1
            outcome = "retried"
        elif settlement.status is OutboxStatus.SUPPRESSED:
            report.suppressed += 1
            outcome = "suppressed"
        else:
            report.failed += 1
            outcome = "failed"
        if flag is not None:
            report.flagged += 1
        report.by_kind.setdefault(item.kind, Counter())[outcome] += 1
        return self.settler.add(settlement, flag)

    def release(self, item: ClaimedMessage, why: str) -> None:
        self.settle(
            item,
            Settlement(
                id=item.id,
                status=OutboxStatus.PENDING,
                at=self.clock.now(),
                last_error=why,
                release=True,
            ),
        )

    def defer(self, item: ClaimedMessage) -> None:
        """Back to pending unattempted: the relay's quota is full for this run."""
        self.settle(
            item,
            Settlement(
                id=item.id,
                status=OutboxStatus.PENDING,
                at=self.clock.now(),
                last_error=f"deferred: {self.report.stopped or 'relay quota full'}",
                release=True,
                deferred=True,
            ),
        )

    def stop_for_quota(self, quota: RelayQuota) -> None:
        if not self.stopping:
            until = quota.full_until
            self.quota_full = True
            self.stop(
                f"{QUOTA_STOP} ({quota.describe()})"
                + (f" until {until:%Y-%m-%d %H:%M:%S} UTC" if until is not None else "")
                + "; the rest waits for the next window"
            )

    def settle_failure(self, item: ClaimedMessage, failure: SendFailure) -> None:
        now = self.clock.now()
        settings = self.settings
        decision = decide(
            failure,
            attempts=item.attempts,
            max_attempts=settings.outbox_max_attempts,
            had_unknown=item.had_unknown,
        )
        if decision.disposition is Disposition.CONFIGURATION:
            # The relay refuses us, not this message: give the row back untouched (no attempt
            # counted) and stop the run (``lane_loop`` records it as fatal; the flow ends Failed
            # with this line).
            self.release(item, f"relay refused the client: {failure.describe()}")
            cause = client_refusal(failure) or "configuration"
            endpoint = f"{settings.smtp_host}:{settings.smtp_port}"
            raise SmtpConfigurationError(mask_text(refusal_message(endpoint, failure, cause)))
        if decision.disposition is Disposition.RELEASE:
            self.release(item, f"not attempted: {failure.describe()}")
            return
        # The row's short history: which transaction this was and what the server said.
        text = f"attempt {item.attempts}: {failure.describe()}"
        if decision.disposition is Disposition.UNKNOWN or item.had_unknown:
            text = f"{UNKNOWN_PREFIX} ({text})"
        if decision.disposition is Disposition.UNKNOWN:
            self.log_row(
                "outbox row %d (%s): no reply after its data; retrying once in %g s",
                item.id,
                item.kind,
                settings.outbox_unknown_retry_s,
            )
            self.settle(
                item,
                _pending_again(
                    item,
                    now,
                    failure,
                    text,
                    now + timedelta(seconds=settings.outbox_unknown_retry_s),
                    unknown=True,
                ),
            )
            return
        if decision.disposition is Disposition.RETRY:
            due = next_attempt_at(
                now,
                item.attempts,
                base_s=settings.outbox_backoff_base_s,
                max_s=settings.outbox_backoff_max_s,
                jitter=self.rng.random(),
            )
            self.settle(item, _pending_again(item, now, failure, text, due))
            return
        self.log_row(
            "outbox row %d (%s) to %s failed permanently: %s",
            item.id,
            item.kind,
            mask_email(item.recipient_email),
            mask_text(text),
        )
        flag = None
        if decision.flag_recipient and (item.customer_id or item.staff_id):
            flag = UndeliverableAddress(item.recipient_email, item.customer_id, item.staff_id)
        self.settle(
            item,
            Settlement(
                id=item.id,
                status=OutboxStatus.FAILED,
                at=now,
                smtp_response=failure.describe(),
                last_error=text,
                attempts=item.attempts,
            ),
            flag,
        )

    # -- building -----------------------------------------------------------------------------

    def build(self, item: ClaimedMessage, now: datetime) -> bytes | Settlement:
        """The message bytes, or the settlement that replaces sending (suppressed, failed)."""
        job = self.prepare(item, now)
        if isinstance(job, Settlement):
            return job
        built = build_one(job, sender=self.sender, base_url=self.base_url, date=now, key=self.key)
        return self._failed(item, now, built) if isinstance(built, str) else built

    def prepare(self, item: ClaimedMessage, now: datetime) -> BuildJob | Settlement:
        """What to build (whether with an unsubscribe link), or the settlement that replaces
        building (unknown kind, suppressed): decisions that stay in this process."""
        kind = KINDS.get(item.kind)
        if kind is None:
            return self._failed(item, now, f"render: unknown email kind {item.kind!r}")
        unsubscribe: int | None = None
        if kind.audience == "customer":
            consent = item.consent
            reason = (
                "customer not found"
                if consent is None
                else suppression_reason(
                    audience=kind.audience,
                    consent_flag=kind.consent,
                    unsubscribed=consent.unsubscribed,
                    marketing_opt_out=consent.marketing_opt_out,
                    survey_opt_out=consent.survey_opt_out,
                )
            )
            if reason is not None:
                return Settlement(
                    id=item.id,
                    status=OutboxStatus.SUPPRESSED,
                    at=now,
                    last_error=f"suppressed: {reason}",
                )
            unsubscribe = item.customer_id
        # Dated by the row's creation, not this attempt: a retry rebuilds the same bytes.
        return BuildJob(
            item.kind,
            item.locale,
            item.context,
            item.message_id,
            item.recipient_email,
            item.recipient_name,
            unsubscribe,
            item.id,
            item.created_at,
            item.attachments,
        )

    def _failed(self, item: ClaimedMessage, now: datetime, why: str) -> Settlement:
        self.log_row("outbox row %d (%s) cannot be built: %s", item.id, item.kind, mask_text(why))
        return Settlement(id=item.id, status=OutboxStatus.FAILED, at=now, last_error=why[:500])

    # -- the producer and the lanes -------------------------------------------------------------

    async def produce(self, group: asyncio.TaskGroup) -> None:
        settings = self.settings
        try:
            while not self.stopping:
                wanted = await self.claim_size()
                if self.limit is not None:
                    wanted = min(wanted, self.limit - self.report.claimed)
                if wanted <= 0:
                    break
                now = self.clock.now()
                lease_until = now + timedelta(seconds=settings.outbox_lease_s)
                leases: list[Lease]
                if self.engine.dialect.name == "sqlite":
                    # SQLite's one write lock serves the claims and the sent marks. Taken in
                    # this thread, between two group writes, the claim's few UPDATE statements
                    # never make a mark wait; from another thread, a mark would wait for the
                    # whole claim, however long that thread waits for the CPU and the GIL.
                    leases = self.settler.claim(now=now, lease_until=lease_until, limit=wanted)
                else:
                    # PostgreSQL locks rows: a claim (SKIP LOCKED) and the marks never wait
                    # for each other, so the claim's round trips stay off the loop.
                    leases = await self.in_thread(
                        claim_leases,
                        bind=self.engine,
                        now=now,
                        lease_until=lease_until,
                        owner=self.owner,
                        limit=wanted,
                    )
                rows: list[ClaimedMessage] = await self.in_thread(
                    load_claimed, engine=self.engine, leases=leases
                )
                if not rows:
                    break
                self.report.claimed += len(rows)
                if self.pool is None and self.pool_workers and len(rows) >= MIN_ROWS:
                    await self.start_pool()
                await self.dispatch(rows, group)
                while len(self.queue) + self.in_flight > self.low_water and not self.stopping:
                    self.need_more.clear()
                    await self.need_more.wait()
        finally:
            self.producer_done = True
            self.item_added.set()

    def send_rate(self) -> float | None:
        """Transactions per second the lanes have managed so far (None until each lane could
        have finished one)."""
        if self.sending_since is None or self.sends_done < self.settings.smtp_concurrency:
            return None
        elapsed = time.monotonic() - self.sending_since
        return self.sends_done / elapsed if elapsed > 0 else None

    async def claim_size(self) -> int:
        """How many rows to claim now: what the lanes can start before the new lease runs
        short, after the rows already held (sent first), at half the measured rate (a shared
        machine's rate moves; claiming twice is cheap, running out of lease is not). More
        would only come back unsent at the end of the lease and be claimed again. Before the
        rate is known, one small claim, then wait for it."""
        settings = self.settings
        batch = settings.outbox_batch_size
        first = min(batch, 2 * settings.smtp_concurrency)
        window = settings.outbox_lease_s - self.send_budget.total_seconds()
        while not self.stopping:
            held = len(self.queue) + self.in_flight
            rate = self.send_rate()
            if rate is None:
                if self.report.claimed == 0 or held == 0:
                    return first
            else:
                room = int(rate * window * CLAIM_RATE_SHARE) - held
                if held == 0 or room >= min(batch, settings.smtp_concurrency):
                    return min(batch, max(room, settings.smtp_concurrency))
            await asyncio.sleep(0.02)
        return 0

    async def start_pool(self) -> None:
        assert self.pool_defaults is not None
        company, default_base = self.pool_defaults
        try:
            self.pool = BuildExecutor(
                self.pool_workers, company=company, default_base_url=default_base
            )
        except OSError as exc:
            log.warning("outbox: build workers could not start (%s); building in-process", exc)
            self.pool_workers = 0

    async def dispatch(self, rows: list[ClaimedMessage], group: asyncio.TaskGroup) -> None:
        """Queue claimed rows: in chunks to the build workers while they are alive and ready
        (waiting for a free slot rather than piling work up), otherwise for the lanes."""
        pool = self.pool
        if pool is None or not pool.alive:
            self.queue.extend((row, None) for row in rows)
            self.item_added.set()
            return
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            # While the workers start (~1 s on a quiet machine, 20 s measured at load 10), the
            # lanes build what keeps them busy themselves (two chunks queued unbuilt at most):
            # chunks handed to workers still importing would leave every lane idle until then.
            while pool.alive and not pool.ready and len(self.queue) > 2 * CHUNK:
                if self.stopping:
                    break
                await asyncio.sleep(0.01)
            if pool.alive and not pool.ready and not self.stopping:
                self.queue.extend((row, None) for row in chunk)
                self.item_added.set()
                continue
            # Then wait for room in the pool rather than pile chunks up in it.
            while pool.alive and not pool.has_room and not self.stopping:
                self.slot_freed.clear()
                await self.slot_freed.wait()
            now = self.clock.now()
            jobs: list[tuple[ClaimedMessage, BuildJob]] = []
            for row in chunk:
                job = self.prepare(row, now)
                if isinstance(job, Settlement):
                    self.settle(row, job)
                else:
                    jobs.append((row, job))
            if not jobs:
                continue
            waiter = None
            if pool.alive and not self.stopping:
                try:
                    waiter = pool.submit(
                        [job for _, job in jobs],
                        sender=self.sender,
                        base_url=self.base_url,
                        date=now,
                        key=self.key,
                    )
                except BuildLost:
                    waiter = None
            if waiter is None:
                self.queue.extend((row, None) for row, _ in jobs)
                self.item_added.set()
                continue
            self.in_flight += len(jobs)
            group.create_task(self.collect(jobs, waiter, now))

    async def collect(
        self,
        jobs: list[tuple[ClaimedMessage, BuildJob]],
        waiter: Coroutine[Any, Any, list[bytes | str]],
        now: datetime,
    ) -> None:
        """Build a chunk in the pool and queue its messages; a chunk whose worker died (or
        hung) was never sent: release its rows."""
        try:
            try:
                results = await waiter
            except BuildLost:
                for row, _ in jobs:
                    self.release(row, "build worker stopped before building; released unsent")
                return
            except asyncio.CancelledError:
                # The run is being torn down: these rows were never sent; give them back now
                # rather than leave them to their lease (the outcomes are written at the end).
                for row, _ in jobs:
                    self.release(row, "run ended before sending")
                raise
            for (row, _), built in zip(jobs, results, strict=True):
                if isinstance(built, str):
                    self.settle(row, self._failed(row, now, built))
                else:
                    self.queue.append((row, built))
        finally:
            self.in_flight -= len(jobs)
            self.slot_freed.set()
            self.item_added.set()
            # The producer waits on queued + in-flight rows; rows settled or released here
            # never reach the queue, so wake it (it re-checks the level).
            self.need_more.set()

    async def connect_with_retries(self, lane: SmtpLane) -> SendFailure | None:
        failure: SendFailure | None = None
        for delay in (*CONNECT_RETRY_DELAYS, None):
            failure = await lane.connect()
            if failure is None:
                return None
            if delay is None or self.stopping:
                break
            await asyncio.sleep(delay)
        return failure

    async def lane_loop(self, lane: SmtpLane) -> None:
        try:
            await self._lane_loop(lane)
        except SmtpConfigurationError as exc:
            if self.fatal is None:
                self.fatal = exc
            self.stop(f"smtp configuration: {exc}")
        finally:
            self.live_lanes -= 1
            if self.live_lanes == 0:
                self.lanes_done.set()
            if (
                self.live_lanes == 0
                and not self.stopping
                and not (self.producer_done and not self.queue)
            ):
                self.stop("smtp unavailable: no connection could be kept open")
            await lane.quit()

    async def _lane_loop(self, lane: SmtpLane) -> None:
        last_mark = 0  # the settler's ticket of this lane's last acceptance
        while True:
            if not lane.connected:
                failure = await self.connect_with_retries(lane)
                if failure is not None:
                    log.warning("outbox: SMTP lane gave up: %s", mask_text(failure.describe()))
                    return
            entry = await self.next_item()
            if entry is None:
                return
            item, built = entry
            now = self.clock.now()
            if now + self.send_budget >= self.lease_end(item):
                self.release(item, "lease ran short before sending; released unsent")
                continue
            if built is None:
                # Building is the loop thread's biggest CPU cost: write the marks waiting for
                # this turn's group write first, so that no acceptance waits behind it.
                self.settler.write_now()
                built = self.build(item, now)
            if isinstance(built, Settlement):
                self.settle(item, built)
                continue
            # While the settler cannot write, send nothing more: each lane then holds at most
            # one accepted message without its durable mark (the crash window stays bounded).
            while self.settler.retrying and not self.stopping:
                await asyncio.sleep(0.05)
            await self.checkpoint_between_sends()
            if self.stopping:
                self.release(item, self.report.stopped or "run ended before sending")
                continue
            # The relay's quota last, so that nothing delays the send after its slot is taken
            # (a slot is good only until shortly before its window ends).
            slot_at = time.monotonic()
            if self.quota is not None:
                if not await self.quota.take():
                    # The hour's quota is used up: stop; every row left goes back to pending
                    # for a later run.
                    self.stop_for_quota(self.quota)
                    self.defer(item)
                    continue
                slot_at = time.monotonic()
                if self.clock.now() + self.send_budget >= self.lease_end(item):
                    self.release(item, "lease ran short waiting for the relay quota; released")
                    continue
            if self.sending_since is None:
                self.sending_since = time.monotonic()
            self.sending += 1
            try:
                last_mark = await self._send_and_settle(lane, item, built, last_mark) or last_mark
            finally:
                self.sending -= 1
            if self.quota is not None:
                self.quota.timed(time.monotonic() - slot_at)

    async def checkpoint_between_sends(self) -> None:
        """When the settler wants a WAL checkpoint (SQLite), start no send until it has run,
        and run it once no lane has a transaction in flight: no 250 can then be waiting for a
        mark while it runs."""
        while self.settler.checkpoint_due and not self.stopping:
            if self.sending == 0:
                self.settler.checkpoint()
                return
            await asyncio.sleep(0.001)

    async def _send_and_settle(
        self, lane: SmtpLane, item: ClaimedMessage, built: bytes, last_mark: int
    ) -> int | None:
        """One SMTP transaction and its outcome (a lane counts it in flight meanwhile); returns
        the settler's ticket of the mark when the server accepted the message.

        ``last_mark`` is the ticket of the lane's previous acceptance: its durable mark is
        awaited after RCPT, before DATA, so that at any instant each connection has at most
        one accepted message without its mark (a crash resends at most
        ``smtp_concurrency`` messages), while the commit overlaps the MAIL and RCPT round
        trips instead of adding to every message's time."""

        async def previous_marked() -> bool:
            # A run that is stopping still finishes the transactions it started; one whose
            # marks cannot be written sends nothing more.
            await self.settler.durable(last_mark)
            return self.settler.error is None

        try:
            outcome = await lane.send(item.recipient_email, built, before_data=previous_marked)
            self.sends_done += 1
        except SmtpConfigurationError as exc:
            self.release(item, f"smtp configuration: {exc}")
            raise
        if isinstance(outcome, SendFailure) and outcome.stage is Stage.CONNECT:
            # The connection broke between messages and could not be reopened: nothing was
            # attempted. Keep the row (and its lease) for the next working lane.
            self.queue.appendleft((item, built))
            self.item_added.set()
            return None
        if isinstance(outcome, Accepted):
            self.settle_genuine(self.refusals.other_outcome())
            ticket = self.settle(
                item,
                Settlement(
                    id=item.id,
                    status=OutboxStatus.SENT,
                    at=self.clock.now(),
                    smtp_response=f"250 {outcome.response}",
                    attempts=item.attempts,
                ),
            )
            # The next message on this connection waits for this mark before its DATA.
            return ticket
        if (
            outcome.stage is Stage.RECIPIENT
            and is_permanent(outcome.code)
            and client_refusal(outcome) is None
        ):
            verdict = self.refusals.refused(item.recipient_email, item, outcome)
            self.settle_genuine(verdict.genuine)
            if verdict.relay_refuses:
                self.relay_refuses_recipients(verdict.relay_refuses)
        else:
            self.settle_genuine(self.refusals.other_outcome())
            self.settle_failure(item, outcome)
        return None

    def release_unsent(self) -> None:
        while self.queue:
            item, _ = self.queue.popleft()
            if self.quota_full:
                self.defer(item)
            else:
                self.release(item, self.report.stopped or "run ended before sending")
        held = self.refusals.finish()
        if isinstance(self.fatal, SmtpConfigurationError):
            # The run stopped because the relay refuses us: these refusals were that too.
            for item, failure in held:
                self.release(item, f"relay refused the client: {failure.describe()}")
        else:
            self.settle_genuine(held)

    def settle_genuine(self, rows: list[tuple[ClaimedMessage, SendFailure]]) -> None:
        for item, failure in rows:
            self.settle_failure(item, failure)

    def relay_refuses_recipients(self, rows: list[tuple[ClaimedMessage, SendFailure]]) -> None:
        """The same permanent refusal for ``REFUSAL_STREAK`` different recipients, nothing
        accepted: the relay's answer to us, not theirs. Rows go back unattempted, nothing is
        flagged, and the run stops (``lane_loop`` records it as fatal)."""
        for item, failure in rows:
            self.release(item, f"relay refused the client: {failure.describe()}")
        failure = rows[-1][1]
        cause = (
            f"the relay gave {len(rows)} different recipients the same refusal and accepted "
            "nothing (authenticate, or allow this host)"
        )
        endpoint = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        raise SmtpConfigurationError(mask_text(refusal_message(endpoint, failure, cause)))


async def deliver_due_async(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    limit: int | None = None,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Send every due outbox row (at most ``limit``); see the module docstring."""
    # The run's clock starts now, before the collection that precedes freezing (up to 0.5 s
    # measured): the relay quota's windows are counted on it, and must match the relay's.
    clock = RunClock(now)
    with long_lived_objects_frozen():
        return await _deliver_due(engine, settings, clock=clock, limit=limit, rng=rng)


async def _deliver_due(
    engine: Engine,
    settings: Settings,
    *,
    clock: RunClock,
    limit: int | None,
    rng: random.Random | None,
) -> DeliveryReport:
    started = time.monotonic()
    owner = lease_owner()
    target = SmtpTarget.from_settings(settings)
    claim_executor = ThreadPoolExecutor(1, thread_name_prefix="outbox-claim")
    # PostgreSQL: marks are written in a thread of their own, never behind a claim (see
    # ``_Settler``); SQLite: in the loop thread.
    settle_executor = (
        None
        if engine.dialect.name == "sqlite"
        else ThreadPoolExecutor(1, thread_name_prefix="outbox-settle")
    )
    settler = _Settler(
        engine, owner, checkpoint_every=SQLITE_CHECKPOINT_EVERY, executor=settle_executor
    )
    run = _Run(
        engine,
        settings,
        clock=clock,
        limit=limit,
        rng=rng or random.Random(),
        owner=owner,
        claim_executor=claim_executor,
        settler=settler,
    )
    windows = relay_windows(settings)
    if windows:
        relay = relay_key(settings)

        async def claim(wanted: int) -> Grant:
            kwargs: dict[str, Any] = {
                "relay": relay,
                "windows": windows,
                "now": clock.now(),
                "wanted": wanted,
            }
            if engine.dialect.name == "sqlite":
                return settler.write(claim_slots, **kwargs)  # the write lock: see ``produce``
            return await asyncio.to_thread(claim_slots, engine, **kwargs)

        run.quota = RelayQuota(
            claim, windows=windows, now=clock.now, cap=2 * settings.smtp_concurrency
        )
    run.pool_workers = build_workers()
    if run.pool_workers:
        try:
            # What the workers' renderer must use, fixed from this process's settings.
            run.pool_defaults = _settings_defaults()
        except Exception as exc:  # rendering will report it per row, as before
            log.debug("outbox: no build workers: %s", exc.__class__.__name__)
            run.pool_workers = 0
    lanes = [SmtpLane(target) for _ in range(settings.smtp_concurrency)]
    try:
        # Connect once before claiming anything: an outage or a bad TLS setup then leaves every
        # row exactly as it was (no attempt counted, no lease to wait out).
        failure = await run.connect_with_retries(lanes[0])
        if failure is not None:
            run.report.stopped = f"smtp unavailable: {mask_text(failure.describe())}"
            log.warning("outbox: %s; rows stay pending", run.report.stopped)
            return run.report
        run.live_lanes = len(lanes)

        error: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run.produce(group))
                group.create_task(run.renew_leases())
                for lane in lanes:
                    group.create_task(run.lane_loop(lane))
        except BaseException as exc:  # re-raised below, once the outcomes are written
            error = exc.exceptions[0] if isinstance(exc, BaseExceptionGroup) else exc
            if len(getattr(exc, "exceptions", ())) > 1:
                log.error("outbox: more than one task failed; the first is raised", exc_info=exc)
        # Whatever happened, write the outcomes we know: an accepted message left unmarked
        # would be sent again once its lease expires.
        run.release_unsent()
        try:
            await settler.flush_all()
        except Exception:
            if error is None:
                raise
            log.exception("outbox: could not write the last outcomes")
        if error is not None:
            raise error
        if run.fatal is not None:
            raise run.fatal
        return run.report
    finally:
        if settle_executor is not None:
            settle_executor.shutdown(wait=True)  # a group still being written ends first
        settler.close()
        for lane in lanes:
            lane.close()
        if run.pool is not None:
            # Idle workers exit at once; a lost pool was already shut down without waiting.
            run.pool.shutdown(wait=run.pool.alive)
        claim_executor.shutdown(wait=True)
        run.report.duration_s = round(time.monotonic() - started, 3)
        run.report.mark_delay_max_ms = round(settler.max_delay_s * 1000, 1)
        run.report.checkpoints = settler.checkpoints
        run.report.checkpoint_max_ms = round(settler.checkpoint_max_s * 1000, 1)
        log.info(
            "outbox: %s in %.1f s (%d transactions for settlements, longest wait for a mark "
            "%.1f ms%s)%s",
            run.report.counts(),
            run.report.duration_s,
            settler.transactions,
            run.report.mark_delay_max_ms,
            (
                f"; {settler.checkpoints} WAL checkpoints between sends, longest "
                f"{run.report.checkpoint_max_ms} ms"
                if settler.checkpoints
                else ""
            ),
            f"; stopped: {run.report.stopped}" if run.report.stopped else "",
        )


def deliver_due(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    limit: int | None = None,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """Synchronous entry point (Prefect tasks, the CLI): runs the async pipeline to the end."""
    return _run_sync(deliver_due_async(engine, settings, now=now, limit=limit, rng=rng))


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running event loop (an async caller): use a loop of our own.
    with ThreadPoolExecutor(1, thread_name_prefix="outbox-deliver") as executor:
        return executor.submit(asyncio.run, coro).result()
