"""IO for the revisits flow, step 1: create the revisits that fall due, one id range at a time.

A customer is due when its last completed contact (or, never contacted, the day it became a
customer) plus its class cadence is on or before the planning cut-off. The selection is one SQL
statement per id range; assignment and due dates come from the pure rules; the inserts of a range
commit together. ``ON CONFLICT DO NOTHING`` against the unique keys (one open revisit per customer,
one revisit per customer and due date) makes re-runs and concurrent runs create nothing twice.
An email-channel revisit's care email can be queued in the same pass (see ``plan_range``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Date,
    Engine,
    String,
    bindparam,
    func,
    select,
    text,
)

from crm_db.bulk import driver_date, driver_timestamp, insert_rows
from crm_db.enums import AbcClass, ContactChannel, RevisitStatus
from crm_db.models import Customer
from crm_db.types import UTCDateTime, raw_utc_datetime
from tasks.common.customer_context import load_last_issues
from tasks.common.directory import StaffRecord
from tasks.common.run_context import RunContext, RunCounts
from tasks.mail.outbox import NewMessage, PreparedMessages, prepare
from tasks.revisits.care import (
    CARE_QUEUED,
    NO_EMAIL_REASONS,
    CareRecipient,
    CareSigner,
    care_message,
    care_signer,
    care_skip_reason,
)
from tasks.revisits.rules.capacity import Capacity
from tasks.revisits.rules.planning import Cadence, planning_cutoff, scheduled_due
from tasks.rules.organisation import Assignment, SkipReason


@dataclass(frozen=True)
class PlanningContext(RunContext):
    """A revisits run's context: the shared run context plus the revisit policies by class and
    the account managers' daily capacity."""

    cadences: Mapping[AbcClass, Cadence]
    capacity: Capacity = Capacity()
    # The 片区 (region ids) whose due customers this run plans; None: every region (and the
    # customers without a branch, whom planning reports as unassignable).
    region_ids: frozenset[int] | None = None

    @property
    def staff(self) -> Mapping[int, StaffRecord]:
        return self.directory.staff

    @property
    def cutoff(self) -> date:
        return planning_cutoff(self.as_of, self.calendar)

    @property
    def due_on(self) -> date:
        """The due date of every revisit planned in this run. The selection takes exactly the
        customers whose natural due date is on or before the cut-off, and the cut-off is never
        after ``as_of``; ``scheduled_due`` gives all of them the same day (the next working day
        from ``as_of``), so it is computed once, not per customer."""
        return scheduled_due(natural=self.cutoff, as_of=self.as_of, calendar=self.calendar)

    def threshold_params(self) -> dict[str, Any]:
        """Per class: the latest natural-due base date that is due at the cut-off, as a date (for
        ``first_card_on``) and as the UTC instant ending that local day (for contact times)."""
        params: dict[str, Any] = {}
        for abc in AbcClass:
            base = self.cutoff - timedelta(days=self.cadences[abc].cadence_days)
            end_local = datetime.combine(base + timedelta(days=1), time(0), tzinfo=self.timezone)
            params[f"day_{abc.value}"] = base
            params[f"end_{abc.value}"] = end_local.astimezone(UTC)
        return params


# The due customers of an id range: every customer whose natural due date (last completed
# contact, or the first card, plus the class cadence) is on or before the cut-off and who has no
# open revisit; the per-class thresholds come from ``PlanningContext.threshold_params``. Two
# fragments (``FROM ... WHERE ...``), so the benchmark's baseline selects exactly this set.
DUE_CUSTOMERS_FROM = """
    customers c
    LEFT JOIN (
        SELECT customer_id,
               MAX(CASE WHEN outcome IN ('completed', 'issue_raised') THEN occurred_at END)
                 AS last_completed,
               MAX(occurred_at) AS last_contact
        FROM contact_history
        WHERE customer_id BETWEEN :lo AND :hi
        GROUP BY customer_id
    ) lc ON lc.customer_id = c.id
"""
DUE_CUSTOMERS_WHERE = """
    c.id BETWEEN :lo AND :hi
    AND c.abc_class IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM revisits o WHERE o.customer_id = c.id AND o.status = 'open')
    AND CASE c.abc_class
          WHEN 'A' THEN (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_A
                              ELSE lc.last_completed < :end_A END)
          WHEN 'B' THEN (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_B
                              ELSE lc.last_completed < :end_B END)
          ELSE (CASE WHEN lc.last_completed IS NULL THEN c.first_card_on <= :day_C
                     ELSE lc.last_completed < :end_C END)
        END
"""
DUE_THRESHOLDS: tuple[BindParameter[Any], ...] = (
    *(bindparam(f"end_{abc.value}", type_=UTCDateTime()) for abc in AbcClass),
    *(bindparam(f"day_{abc.value}", type_=Date()) for abc in AbcClass),
)

# With what planning needs beside each due customer: the assignment inputs and region, and the
# care email's inputs (address, consent, the last contact of any kind for the text and - for the
# classes whose channel is email - the last customer-facing email, for the contact cap), so care
# emails need no second read. A select-list subquery runs for the selected rows only.
# "Not failed or suppressed" (= pending, sending or sent) is spelled as NOT IN on purpose: an IN
# list lets PostgreSQL AND the customer's index with the (status, next_attempt_at) index, and
# while the outbox has no statistics (a new install, or just after a big run) it expects few
# pending rows and scans all of them once per customer - measured 0.7 s more per million
# customers.
_DUE_CANDIDATES_SQL = f"""
    SELECT c.id, c.abc_class, c.branch_id, c.account_manager_id,
           c.marketing_opt_out OR c.unsubscribed_at IS NOT NULL AS opted_out,
           COALESCE(r.code, '-') AS region_code,
           c.name, c.email, c.email_undeliverable, c.locale, lc.last_contact,
           CASE WHEN c.abc_class IN :email_classes THEN
             (SELECT MAX(e.created_at) FROM email_outbox e
              WHERE e.customer_id = c.id AND e.status NOT IN ('failed', 'suppressed'))
           END AS last_email
    FROM {DUE_CUSTOMERS_FROM}
    LEFT JOIN branches b ON b.id = c.branch_id
    LEFT JOIN regions r ON r.id = b.region_id
    WHERE {DUE_CUSTOMERS_WHERE} {{region_filter}}
    ORDER BY c.id
"""
_CANDIDATE_PARAMS = (*DUE_THRESHOLDS, bindparam("email_classes", expanding=True, type_=String()))
_DUE_CANDIDATES = text(_DUE_CANDIDATES_SQL.format(region_filter="")).bindparams(*_CANDIDATE_PARAMS)
# A run for some regions only (the flow's ``region_codes``): the filter is in the statement, so
# the other regions' customers are never read. A statement of its own rather than a
# "(:all OR ...)" switch, so the planner of the everyday (all regions) run sees no extra clause.
_DUE_CANDIDATES_IN_REGIONS = text(
    _DUE_CANDIDATES_SQL.format(region_filter="AND b.region_id IN :region_ids")
).bindparams(*_CANDIDATE_PARAMS, bindparam("region_ids", expanding=True))


def customer_id_ranges(engine: Engine, size: int, lanes: int = 1) -> list[tuple[int, int]]:
    """Contiguous id ranges covering every customer (the unit of a task): ``size`` ids each,
    except that with ``lanes`` ranges planned side by side the first ``lanes - 1`` are shorter,
    staggered (``size * k / lanes`` ids for k = 1 .. lanes-1).

    Staggered, the lanes run out of phase - one reads and computes while another writes -
    instead of all writing at once: concurrent bulk inserts into the same tables cost ~40 % more
    database CPU (WAL and index pages; measured on PostgreSQL), which at a million customers made
    planning 0.2 s slower on two cores."""
    # Two scalar subqueries: SQLite answers a lone MIN or MAX from the index, but scans the
    # whole table (0.1 s at a million customers) for both in one SELECT.
    bounds = select(
        select(func.min(Customer.id)).scalar_subquery(),
        select(func.max(Customer.id)).scalar_subquery(),
    )
    with engine.connect() as conn:
        lo, hi = conn.execute(bounds).one()
    if lo is None:
        return []
    return id_ranges(lo, hi, size, lanes)


def id_ranges(lo: int, hi: int, size: int, lanes: int = 1) -> list[tuple[int, int]]:
    """``lo..hi`` in ranges of ``size``, the first ``lanes - 1`` staggered (see
    ``customer_id_ranges``)."""
    if size < 1 or lanes < 1:
        raise ValueError(f"size and lanes must be positive, got {size} and {lanes}")
    # Lane k's first range has k+1 lanes' share of ``size``, so the lanes' first ranges end a
    # ``size / lanes`` apart and every lane after that runs full ranges, staying that far apart.
    sizes = [max(1, size * k // lanes) for k in range(1, lanes)]
    ranges: list[tuple[int, int]] = []
    start = lo
    while start <= hi:
        length = sizes[len(ranges)] if len(ranges) < len(sizes) else size
        ranges.append((start, min(start + length - 1, hi)))
        start += length
    return ranges


_REVISIT_COLUMNS = (
    "customer_id",
    "assignee_id",
    "abc_class",
    "channel",
    "due_on",
    "status",
    "needs_reassignment",
    "run_id",
    "created_at",
    "outcome",
    "completed_at",
)


@dataclass(frozen=True, slots=True)
class _Planned:
    customer_id: int
    assignee_id: int | None
    cadence: Cadence
    needs_reassignment: bool
    region: str
    recipient: CareRecipient | None  # email channel: who the care email would go to
    channel: ContactChannel  # the cadence's, or phone for a customer who cannot get email


def plan_range(
    engine: Engine,
    ctx: PlanningContext,
    lo: int,
    hi: int,
    *,
    run_id: int | None,
    dry_run: bool,
    care_cap_days: int | None = None,
) -> RunCounts:
    """Create the due revisits of customers ``lo..hi``; in a dry run only count them.

    With ``care_cap_days`` (the contact cap), an email-channel revisit that can go out now
    (address, cap) is sent here as its care email: the revisit is created waiting for it
    (``CARE_QUEUED``; the relay's 250 completes it, ``tasks.revisits.care_delivery``) and the
    email queued, in the range's transaction - saving a second pass over the day's revisits. A
    customer who cannot get email (opted out, no or undeliverable address) gets a phone revisit
    instead, counted as ``phone_instead:<reason>``: open, in the manager's digest, and - being
    open - not due again until it is done. One held back by the contact cap stays an open email
    revisit, counted as ``care_skipped:contact_cap``, for ``queue_care_emails`` on a later day
    (without ``care_cap_days``, ``queue_care_emails`` sends them all).

    The selection reads in its own short transaction and the inserts write in another, so ranges
    can be planned concurrently: SQLite readers never block each other in WAL mode, and a read
    snapshot is never upgraded to a write (which SQLite refuses once another range has committed).
    A revisit another writer created in between is skipped by the unique keys (and so is its
    care email).
    """
    counts = RunCounts()
    email_classes = [
        abc.value
        for abc, cadence in ctx.cadences.items()
        if cadence.channel is ContactChannel.EMAIL and care_cap_days is not None
    ]
    params = {"lo": lo, "hi": hi, "email_classes": email_classes, **ctx.threshold_params()}
    statement = _DUE_CANDIDATES
    if ctx.region_ids is not None:
        statement = _DUE_CANDIDATES_IN_REGIONS
        params["region_ids"] = sorted(ctx.region_ids)
    with engine.connect() as conn:
        candidates = conn.execute(statement, params).tuples().all()
        planned = _plan_candidates(candidates, ctx, counts)
        care = (
            _CareBatch.load(conn, ctx, planned, care_cap_days)
            if care_cap_days is not None
            else _CareBatch({}, {}, {}, {})
        )
    for item in planned:
        if item.customer_id in care.recipients:
            counts.add(item.region, "care_emails")
        elif (reason := care.skipped.get(item.customer_id)) is not None:
            if reason in NO_EMAIL_REASONS:  # a call instead, planned once
                counts.add(item.region, f"phone_instead:{reason}")
            else:  # the cap: an email on a later day
                counts.add(item.region, f"care_skipped:{reason}")
    if dry_run or not planned:
        for item in planned:
            counts.add(item.region, "created")
        return counts
    # Messages are built and checked before the write transaction: on SQLite the write lock is
    # the one thing concurrent ranges queue for, so it is held for the inserts only.
    emails = care.prepare(ctx, planned, run_id, engine.dialect.name)
    with engine.begin() as conn:
        created = _insert_revisits(conn, ctx, planned, care, run_id, lo, hi)
        if len(created) < len(planned):  # a concurrent run created some of them first
            emails = emails.for_customers(created)
        care.queue(conn, ctx, emails, lo, hi)
    if len(created) == len(planned):
        for item in planned:
            counts.add(item.region, "created")
    else:  # a concurrent run got some first
        counts.add("-", "created", len(created))
        for item in planned:
            if item.customer_id in care.recipients and item.customer_id not in created:
                counts.add(item.region, "care_emails", -1)
    return counts


def _plan_candidates(
    candidates: Sequence[tuple[Any, ...]], ctx: PlanningContext, counts: RunCounts
) -> list[_Planned]:
    """The revisits to create for a range's due customers (the others counted as skipped).

    Tens of thousands of rows a run go through here, so the per-row work is a few lookups: the
    due date is the run's (``PlanningContext.due_on``) and an assignment is decided once per
    (account manager, branch) pair."""
    cadences = {abc.value: cadence for abc, cadence in ctx.cadences.items()}
    assignments: dict[tuple[int | None, int | None], Assignment] = {}
    tally: Counter[tuple[str, str]] = Counter()
    planned: list[_Planned] = []
    for (
        customer_id,
        abc_class,
        branch_id,
        manager_id,
        opted_out,
        region,
        name,
        email,
        undeliverable,
        locale,
        last_contact,
        last_email,
    ) in candidates:
        tally[region, "due"] += 1
        cadence = cadences[abc_class]
        recipient = None
        channel = cadence.channel
        if channel is ContactChannel.EMAIL and opted_out:
            # An email-channel revisit is a care email; an opted-out customer gets a call.
            channel = ContactChannel.PHONE
        elif channel is ContactChannel.EMAIL:
            recipient = CareRecipient(
                customer_id,
                name,
                email,
                bool(undeliverable),
                locale,
                last_email=raw_utc_datetime(last_email),
                last_contact=raw_utc_datetime(last_contact),
            )
        assignment = assignments.get((manager_id, branch_id))
        if assignment is None:
            assignment = assignments[manager_id, branch_id] = _assign(ctx, manager_id, branch_id)
        if assignment.skip is not None:
            tally[region, f"skipped:{assignment.skip.value}"] += 1
            continue
        if opted_out and cadence.channel is ContactChannel.EMAIL:
            tally[region, _PHONE_OPTED_OUT] += 1
        planned.append(
            _Planned(
                customer_id=customer_id,
                assignee_id=assignment.assignee_id,
                cadence=cadence,
                needs_reassignment=assignment.needs_reassignment,
                region=region,
                recipient=recipient,
                channel=channel,
            )
        )
    for (region, key), n in tally.items():
        counts.add(region, key, n)
    return planned


_PHONE_OPTED_OUT = f"phone_instead:{SkipReason.OPTED_OUT.value}"


def _assign(ctx: PlanningContext, manager_id: int | None, branch_id: int | None) -> Assignment:
    return ctx.directory.owner(manager_id, branch_id)


@dataclass
class _CareBatch:
    """The care emails of one range: who can be emailed now, and what the email says."""

    recipients: dict[int, CareRecipient]
    skipped: dict[int, str]  # customer id -> why no care email goes out now
    last_issues: dict[int, str]
    managers: dict[int, CareSigner]

    @classmethod
    def load(
        cls, conn: Connection, ctx: PlanningContext, planned: list[_Planned], cap_days: int
    ) -> _CareBatch:
        recipients: dict[int, CareRecipient] = {}
        skipped: dict[int, str] = {}
        for item in planned:
            if (r := item.recipient) is None:
                continue
            # Opted-out customers were skipped above, so this is the address and the cap.
            reason = care_skip_reason(
                opted_out=False,
                email=r.email,
                name=r.name,
                undeliverable=r.email_undeliverable,
                last_sent=r.last_email,
                now=ctx.now,
                cap_days=cap_days,
            )
            if reason is None:
                recipients[item.customer_id] = r
            else:
                skipped[item.customer_id] = reason
        assignees = [
            p.assignee_id
            for p in planned
            if p.customer_id in recipients and p.assignee_id is not None
        ]
        return cls(
            recipients=recipients,
            skipped=skipped,
            last_issues=load_last_issues(conn, list(recipients)),
            managers={
                sid: signer
                for sid in sorted(set(assignees))
                if (signer := care_signer(ctx.directory, sid)) is not None
            },
        )

    def prepare(
        self, ctx: PlanningContext, planned: list[_Planned], run_id: int | None, dialect: str
    ) -> PreparedMessages:
        """The care emails, checked and ready to insert (keyed by customer and date, so they do
        not wait for the revisit ids)."""
        messages: list[NewMessage] = []
        for item in planned:
            recipient = self.recipients.get(item.customer_id)
            if recipient is None:
                continue
            manager = self.managers.get(item.assignee_id) if item.assignee_id else None
            last_contact = recipient.last_contact
            messages.append(
                care_message(
                    as_of=ctx.as_of,
                    recipient=recipient,
                    manager=manager,
                    last_contact_date=ctx.local_date(last_contact) if last_contact else None,
                    last_issue=self.last_issues.get(item.customer_id),
                    run_id=run_id,
                )
            )
        return prepare(messages, now=ctx.now, dialect=dialect)

    def queue(
        self,
        conn: Connection,
        ctx: PlanningContext,
        emails: PreparedMessages,
        lo: int,
        hi: int,
    ) -> None:
        """Queue the care emails of the revisits this run created. The contact is recorded
        when the relay accepts the email (``tasks.revisits.care_delivery``)."""
        if emails.rows:
            emails.insert(conn)


def _insert_revisits(
    conn: Connection,
    ctx: PlanningContext,
    planned: list[_Planned],
    care: _CareBatch,
    run_id: int | None,
    lo: int,
    hi: int,
) -> Collection[int]:
    """Insert the planned revisits (those getting a care email now: waiting for it); returns the
    customer ids whose revisit was inserted, skipping any a unique key refused.

    A driver-level bulk insert with the values converted as the column types would (the typed
    per-row path costs more than the selection itself at a million customers). No ``RETURNING``:
    on SQLite that needs multi-row VALUES statements, twice the cost of ``executemany``; the
    inserted count tells whether anything was refused, and only then are the ids read back."""
    dialect = conn.dialect.name
    stamp = driver_timestamp(ctx.now, dialect)
    due_on = driver_date(ctx.due_on, dialect)  # the same for every revisit of the run
    rows = []
    for item in planned:
        emailed = item.customer_id in care.recipients
        no_email = care.skipped.get(item.customer_id) in NO_EMAIL_REASONS
        channel = ContactChannel.PHONE if no_email else item.channel
        rows.append(
            (
                item.customer_id,
                item.assignee_id,
                item.cadence.abc_class.value,
                channel.value,
                due_on,
                RevisitStatus.OPEN.value,
                item.needs_reassignment,
                run_id,
                stamp,
                CARE_QUEUED if emailed else None,
                None,
            )
        )
    # No conflict target: skip rows colliding with ANY unique key, including the partial "one
    # open revisit per customer" index.
    inserted = insert_rows(conn, "revisits", _REVISIT_COLUMNS, rows, "ON CONFLICT DO NOTHING")
    if inserted == len(rows):
        return {item.customer_id for item in planned}
    return set(
        conn.execute(
            _CREATED_BY_RUN, {"lo": lo, "hi": hi, "due_on": ctx.due_on, "now": ctx.now}
        ).scalars()
    )


_CREATED_BY_RUN = text(
    "SELECT customer_id FROM revisits "
    "WHERE customer_id BETWEEN :lo AND :hi AND due_on = :due_on AND created_at = :now"
).bindparams(bindparam("due_on", type_=Date()), bindparam("now", type_=UTCDateTime()))


__all__ = [
    "PlanningContext",
    "RunCounts",
    "SkipReason",
    "customer_id_ranges",
    "id_ranges",
    "plan_range",
]
