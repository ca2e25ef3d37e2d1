"""IO of the complaint check (every 15 minutes): escalate the tiers that fell due, assign the
unassigned complaints by branch, remind branch managers of resolved complaints not verified.

One write transaction per check (the write lock on SQLite, row and unique-key locks on
PostgreSQL), so each decision and its emails commit together:

1. **every complaint handled** - open complaints without an assignee go to their customer's
   account manager while active, else the branch manager (``rules.sweeps.assignee_for``),
   through the lifecycle (an assign event); one ``complaint_assigned`` email per assignee.
2. **escalation** - only complaints with ``next_check_at <= now`` are read (an index range),
   in chunks of ids; ``rules.escalation.plan`` gives each one's due tiers (passed tiers all at
   once, inactive staff skipped up the chain by the shared ladder) and its next check instant.
   The tiers are *claimed* by inserting ``complaint_escalations`` rows that ignore conflicts on
   (complaint, target, tier): only the rows this check inserted get their escalation event and
   reach an email, so a re-run - or a second check at the same time on PostgreSQL, which
   waits on the first one's uncommitted keys - notifies nothing twice. One
   ``complaint_escalation`` email per recipient per check, keyed by the check instant, the
   recipient and the first escalation row it reports (unique: rows are claimed once).
3. **every result re-checked (复查)** - complaints resolved but not verified for N working
   days of their calendar (``complaint.verify_reminder_days``) are claimed by setting
   ``verify_reminded_at``; one ``complaint_verify_reminder`` per branch manager.

A dry run computes the same and writes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, String, Table, func, select, text, type_coerce, update
from sqlalchemy.orm import Session

from crm_core.masking import mask_phone
from crm_core.settings import get_settings
from crm_db.bulk import driver_timestamp, insert_rows_returning, update_rows
from crm_db.enums import ComplaintEventKind, ComplaintStatus, EventSource
from crm_db.models import (
    Branch,
    Complaint,
    ComplaintEscalation,
    Customer,
    Region,
)
from crm_db.policy_defaults import COMPLAINT_EMAIL_MAX_ITEMS, COMPLAINT_VERIFY_REMINDER_DAYS
from tasks.common.calendars import load_all_business_hours
from tasks.common.directory import Directory, load_directory
from tasks.common.policies import setting
from tasks.common.write_lock import begin_write, get_for_update
from tasks.complaints import lifecycle
from tasks.complaints.clock import clock_of
from tasks.complaints.policies import COMPANY_CALENDAR, complaint_hours
from tasks.complaints.rules.escalation import TIER_NAMES, plan
from tasks.complaints.rules.notices import (
    Claimed,
    escalation_key,
    group_by_recipient,
    urgent_first,
)
from tasks.complaints.rules.sweeps import assignee_for, verify_reminder_cutoff
from tasks.mail.outbox import NewMessage, enqueue
from tasks.rules.business_time import BusinessHours
from tasks.rules.escalation_ladder import RecipientKind, Tier, resolve
from tasks.rules.listing import first_of

CHUNK = 2_000
OPEN_STATES = (
    ComplaintStatus.NEW,
    ComplaintStatus.ACKNOWLEDGED,
    ComplaintStatus.IN_PROGRESS,
    ComplaintStatus.WAITING_ON_CUSTOMER,
    ComplaintStatus.RESOLVED,
)
_UNASSIGNED_STATES = OPEN_STATES[:4]
_VERIFY_TIER = Tier("verify", RecipientKind.BRANCH_MANAGER, after=timedelta(0))
NO_REGION = "-"

_COLUMNS = (
    Complaint.id,
    Complaint.external_id,
    Complaint.customer_id,
    Complaint.branch_id,
    Complaint.category,
    Complaint.severity,
    Complaint.status,
    Complaint.assignee_id,
    Complaint.received_at,
    Complaint.acknowledged_at,
    Complaint.resolved_at,
    Complaint.paused_since,
    Complaint.paused_business_minutes,
    Complaint.first_response_minutes,
    Complaint.resolution_minutes,
    Complaint.first_response_due_at,
    Complaint.warn_pct,
    Complaint.assignee_pct,
    Complaint.branch_pct,
    Complaint.region_pct,
    Complaint.executive_pct,
    Complaint.calendar_id,
    Complaint.next_check_at,
    Customer.name.label("customer_name"),
    Customer.abc_class,
    Customer.phone,
    Customer.account_manager_id,
    func.coalesce(Region.code, NO_REGION).label("region_code"),
)


def _rows_query() -> Any:
    return (
        select(*_COLUMNS)
        .join(Customer, Customer.id == Complaint.customer_id)
        .outerjoin(Branch, Branch.id == Complaint.branch_id)
        .outerjoin(Region, Region.id == Branch.region_id)
    )


@dataclass
class CheckOutcome:
    """What one check did (counts only: no personal data)."""

    open_by_state: dict[str, int] = field(default_factory=dict)
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (target, tier)
    by_region: Counter[tuple[str, str]] = field(default_factory=Counter)  # (region, tier)
    checked: int = 0  # complaints read because their next check was due
    next_check_moved: int = 0
    assigned: int = 0
    unassignable: int = 0
    verify_reminders: int = 0
    unnotified: int = 0  # tiers recorded without anybody eligible to tell
    emails: Counter[str] = field(default_factory=Counter)  # kind -> queued
    warnings: list[str] = field(default_factory=list)

    @property
    def warnings_count(self) -> int:
        return sum(n for (_, tier), n in self.escalations.items() if tier == "warning")

    @property
    def breaches(self) -> int:
        """Targets passed (the assignee tier: 100 % of a target)."""
        return sum(n for (_, tier), n in self.escalations.items() if tier == "assignee")

    def counts(self) -> dict[str, int]:
        out = {
            "checked": self.checked,
            "warnings": self.warnings_count,
            "breaches": self.breaches,
            "assigned": self.assigned,
            "unassignable": self.unassignable,
            "verify_reminders": self.verify_reminders,
            "unnotified": self.unnotified,
            "next_check_moved": self.next_check_moved,
        }
        for tier in TIER_NAMES:
            out[f"escalated_{tier}"] = sum(n for (_, t), n in self.escalations.items() if t == tier)
        for kind, n in sorted(self.emails.items()):
            out[f"emails_{kind}"] = n
        for state, n in sorted(self.open_by_state.items()):
            out[f"open_{state}"] = n
        return out


class _Hours:
    """Business hours by calendar id, every calendar loaded once per check (two statements);
    ``None`` is the company calendar, as ``complaint_hours`` reads it."""

    def __init__(self, session: Session) -> None:
        self._session = session
        loaded = load_all_business_hours(session)
        self._by_id: dict[int | None, BusinessHours] = {}
        self._by_id.update(loaded.items())
        self.calendar_ids: list[int] = sorted(loaded)
        company = [h for h in loaded.values() if h.code == COMPANY_CALENDAR]
        if company:
            self._by_id[None] = company[0]

    def __call__(self, calendar_id: int | None) -> BusinessHours:
        if calendar_id not in self._by_id:
            self._by_id[calendar_id] = complaint_hours(self._session, calendar_id)
        return self._by_id[calendar_id]


def _local(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")


def _list_item(row: Row[Any]) -> dict[str, Any]:
    return {
        "reference": row.external_id,
        "customer_name": row.customer_name,
        "customer_class": str(row.abc_class) if row.abc_class else None,
        "phone": mask_phone(row.phone) or None,
        "category": row.category,
        "severity": str(row.severity),
        "received_at": _local(row.received_at),
        "resolved_at": _local(row.resolved_at),
        "first_response_due_at": _local(row.first_response_due_at),
    }


def run_check(
    session: Session,
    now: datetime,
    *,
    run_id: int | None = None,
    dry_run: bool = False,
    chunk: int = CHUNK,
    directory: Directory | None = None,
) -> CheckOutcome:
    """One complaint check at ``now`` in ``session``'s transaction, committed here (nothing is
    written in a dry run; the session is rolled back)."""
    now = now.astimezone(UTC)
    outcome = CheckOutcome()
    if not dry_run:
        begin_write(session.connection())
    try:
        directory = directory or load_directory(session.connection())
        hours = _Hours(session)
        messages: list[NewMessage] = []
        limit = setting(session, COMPLAINT_EMAIL_MAX_ITEMS)
        messages += _assign_unassigned(session, now, directory, outcome, run_id, dry_run, limit)
        messages += _escalate(
            session, now, directory, hours, outcome, run_id, dry_run, chunk, limit
        )
        messages += _remind_unverified(
            session, now, directory, hours, outcome, run_id, dry_run, limit
        )
        outcome.open_by_state = _open_by_state(session)
        if dry_run:
            for message in messages:
                outcome.emails[message.kind] += 1
            session.rollback()
        else:
            result = enqueue(session, messages, now=now)
            if result.existing:
                outcome.warnings.append(f"{result.existing} emails were queued already")
            for message in messages:
                outcome.emails[message.kind] += 1
            session.commit()
    except BaseException:
        session.rollback()
        raise
    if outcome.unnotified:
        outcome.warnings.append(
            f"{outcome.unnotified} escalation tiers found nobody eligible to notify "
            "(no active senior management with an address)"
        )
    if outcome.unassignable:
        outcome.warnings.append(
            f"{outcome.unassignable} open complaints have no assignee and none could be found "
            "(no branch, or no active account or branch manager)"
        )
    return outcome


def _open_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Complaint.status, func.count())
        .where(Complaint.status.in_(OPEN_STATES))
        .group_by(Complaint.status)
    ).tuples()
    found = {str(status): int(n) for status, n in rows}
    return {state.value: found.get(state.value, 0) for state in OPEN_STATES}


# -- 1. every complaint handled ---------------------------------------------------------------


def _assign_unassigned(
    session: Session,
    now: datetime,
    directory: Directory,
    outcome: CheckOutcome,
    run_id: int | None,
    dry_run: bool,
    limit: int,
) -> list[NewMessage]:
    rows = session.execute(
        _rows_query()
        .where(Complaint.assignee_id.is_(None), Complaint.status.in_(_UNASSIGNED_STATES))
        .order_by(Complaint.id)
    ).all()
    by_assignee: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    first: dict[int, int] = {}
    for row in rows:
        choice = assignee_for(
            directory.member(row.account_manager_id),
            directory.member(directory.branch_manager(row.branch_id)),
            has_branch=row.branch_id is not None,
        )
        if choice.assignee_id is None:
            outcome.unassignable += 1
            continue
        if not dry_run:
            locked = get_for_update(session, Complaint, row.id)
            if locked is None or locked.assignee_id is not None:
                continue  # assigned meanwhile (another check, a person)
            lifecycle.assign(
                session,
                row.id,
                choice.assignee_id,
                now,
                None,
                EventSource.FLOW,
                note="assigned by branch (complaint check)",
                recorded_at=now,
            )
        outcome.assigned += 1
        by_assignee[choice.assignee_id].append(_list_item(row))
        first.setdefault(choice.assignee_id, row.id)
    if not dry_run and rows:
        session.flush()
    return [
        message
        for rid, items in sorted(by_assignee.items())
        if (
            message := _staff_message(
                directory,
                rid,
                "complaint_assigned",
                now,
                _sweep_key("complaint_assigned", now, rid, first[rid]),
                items,
                run_id,
                limit,
            )
        )
    ]


def _staff_message(
    directory: Directory,
    recipient_id: int,
    kind: str,
    now: datetime,
    key: str,
    items: list[dict[str, Any]],
    run_id: int | None,
    limit: int,
    **extra: Any,
) -> NewMessage | None:
    """One email to a staff member listing the complaints of ``items`` (dicts with a
    ``reference``): at most ``limit`` complaints (``complaint.email_max_items``), with the
    total and how many more are left out (no silent cap)."""
    member = directory.member(recipient_id)
    if member is None or member.email is None:
        return None
    listing = first_of(items, limit, key=lambda item: item["reference"])
    return NewMessage(
        idempotency_key=key,
        kind=kind,
        locale=member.locale,
        recipient_email=member.email,
        recipient_name=member.name,
        customer_id=None,
        staff_id=recipient_id,
        context={
            "recipient_name": member.name,
            "checked_at": _local(now),
            **listing.context(),
            **extra,
        },
        run_id=run_id,
    )


def _sweep_key(kind: str, now: datetime, recipient_id: int, first_complaint: int) -> str:
    """One message per recipient and check; the first complaint it reports makes the key
    unique even for two checks at the same instant (each complaint is claimed once)."""
    instant = now.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{kind}:{instant}:staff:{recipient_id}:c{first_complaint}"


# -- 2. escalation -------------------------------------------------------------------------------


def _due_rows(session: Session, now: datetime, after: int, limit: int) -> list[Row[Any]]:
    """The next ``limit`` due complaints by id after ``after`` (keyset pages: the first page is
    the whole due set when it is small, and an empty due set costs this one statement), each
    with the tiers it reached so far (``reached``: ``target:tier`` joined by commas, one
    correlated lookup on the unique key)."""
    reached = (
        select(
            func.aggregate_strings(
                type_coerce(ComplaintEscalation.target, String)
                + ":"
                + type_coerce(ComplaintEscalation.tier, String),
                ",",
            )
        )
        .where(ComplaintEscalation.complaint_id == Complaint.id)
        .correlate(Complaint)
        .scalar_subquery()
    )
    query = (
        _rows_query()
        .add_columns(reached.label("reached"))
        .where(Complaint.next_check_at <= now, Complaint.id > after)
        .order_by(Complaint.id)
        .limit(limit)
    )
    return list(session.execute(query))


def _reached(row: Row[Any]) -> set[tuple[str, str]]:
    if not row.reached:
        return set()
    pairs = (item.partition(":") for item in row.reached.split(","))
    return {(target, tier) for target, _, tier in pairs}


def _chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _escalate(
    session: Session,
    now: datetime,
    directory: Directory,
    hours: _Hours,
    outcome: CheckOutcome,
    run_id: int | None,
    dry_run: bool,
    chunk: int,
    limit: int,
) -> list[NewMessage]:
    org = directory.org()
    claimed_all: list[tuple[int, Claimed]] = []  # (escalation row id, claim)
    rows_by_id: dict[int, Row[Any]] = {}
    after = 0
    while rows := _due_rows(session, now, after, chunk):
        after = rows[-1].id
        outcome.checked += len(rows)
        wanted: list[Claimed] = []
        moves: list[tuple[int, datetime, datetime | None]] = []  # (id, old, new)
        for row in rows:
            rows_by_id[row.id] = row
            result = plan(
                clock_of(row, hours(row.calendar_id)),
                _reached(row),
                now,
                directory.posts(row.assignee_id, row.branch_id),
                org,
            )
            wanted.extend(Claimed(row.id, due) for due in result.due)
            if result.next_check_at != row.next_check_at:
                moves.append((row.id, row.next_check_at, result.next_check_at))
        if dry_run:
            claimed_all.extend((-1, c) for c in wanted)
        else:
            claimed_all.extend(_claim(session, now, wanted, rows_by_id, run_id))
            _move_next_checks(session, moves)
        outcome.next_check_moved += len(moves)
        if len(rows) < chunk:
            break  # the last page: no statement to find it empty
    for _, claim in claimed_all:
        row = rows_by_id[claim.complaint_id]
        outcome.escalations[(claim.due.target, claim.due.tier)] += 1
        outcome.by_region[(row.region_code, claim.due.tier)] += 1
    first_row: dict[int, int] = {}
    for escalation_id, claim in sorted(claimed_all, key=lambda pair: pair[0]):
        if claim.due.notice.recipient_id is not None:
            first_row.setdefault(claim.due.notice.recipient_id, escalation_id)
    batches = group_by_recipient(claim for _, claim in claimed_all)
    outcome.unnotified += len(batches.unnotified)
    messages: list[NewMessage] = []
    for rid, items in sorted(batches.by_recipient.items()):
        context_items = [
            _escalation_item(rows_by_id[c.complaint_id], c, directory) for c in urgent_first(items)
        ]
        # The first escalation row it reports makes the key unique per claim set.
        key = f"{escalation_key(now, rid)}:e{first_row.get(rid, 0)}"
        message = _staff_message(
            directory, rid, "complaint_escalation", now, key, context_items, run_id, limit
        )
        if message is None:
            outcome.unnotified += len(items)
            continue
        messages.append(message)
    return messages


def _escalation_item(row: Row[Any], claim: Claimed, directory: Directory) -> dict[str, Any]:
    assignee = directory.member(row.assignee_id)
    return {
        "reference": row.external_id,
        "customer_name": row.customer_name,
        "customer_class": str(row.abc_class) if row.abc_class else None,
        "phone": mask_phone(row.phone) or None,
        "category": row.category,
        "severity": str(row.severity),
        "status": str(row.status),
        "target": claim.due.target,
        "tier": claim.due.tier,
        "due_at": _local(claim.due.threshold_at),
        "late_minutes": claim.due.late_minutes,
        "assignee_name": assignee.name if assignee else None,
        "reason": claim.due.notice.reason,
    }


_ESCALATION_COLUMNS = (
    "complaint_id",
    "target",
    "tier",
    "notified_staff_id",
    "elapsed_minutes",
    "run_id",
    "created_at",
    "threshold_at",
    "late_minutes",
    "reason",
)
_EVENT_COLUMNS = (
    "complaint_id",
    "at",
    "from_status",
    "to_status",
    "actor_id",
    "assignee_id",
    "note",
    "kind",
    "source",
    "recorded_at",
    "detail_key",
)


def _claim(
    session: Session,
    now: datetime,
    wanted: Sequence[Claimed],
    rows_by_id: dict[int, Row[Any]],
    run_id: int | None,
) -> list[tuple[int, Claimed]]:
    """Insert the wanted tiers, ignoring the ones recorded already (by an earlier or a
    concurrent check); return the ones this check inserted, with their row ids, after writing
    their escalation events. Three set-based statements per chunk (claims, events, the claims'
    event ids), whatever the number of complaints; every row is stamped with the check's
    instant ``now``, never the wall clock."""
    if not wanted:
        return []
    conn = session.connection()
    dialect = conn.dialect.name
    by_key = {(c.complaint_id, c.due.target, c.due.tier): c for c in wanted}
    if dialect == "postgresql":
        return _claim_postgres(conn, now, wanted, by_key, rows_by_id, run_id)
    stamp = driver_timestamp(now, dialect)
    inserted = insert_rows_returning(
        conn,
        "complaint_escalations",
        _ESCALATION_COLUMNS,
        [
            (
                c.complaint_id,
                c.due.target,
                c.due.tier,
                c.due.notice.recipient_id,
                c.due.elapsed_minutes,
                run_id,
                stamp,
                driver_timestamp(c.due.threshold_at, dialect),
                c.due.late_minutes,
                (c.due.notice.reason or None) and c.due.notice.reason[:200],
            )
            for c in wanted
        ],
        "ON CONFLICT (complaint_id, target, tier) DO NOTHING",
        ("id", "complaint_id", "target", "tier"),
    )
    claimed = sorted(
        (int(eid), by_key[(int(cid), str(target), str(tier))])
        for eid, cid, target, tier in inserted
    )
    if not claimed:
        return []
    escalation, flow = ComplaintEventKind.ESCALATION.value, EventSource.FLOW.value
    event_rows = insert_rows_returning(
        conn,
        "complaint_events",
        _EVENT_COLUMNS,
        [
            (
                c.complaint_id,
                stamp,
                str(rows_by_id[c.complaint_id].status),
                str(rows_by_id[c.complaint_id].status),
                None,
                c.due.notice.recipient_id,
                f"{c.due.target} {c.due.tier}: {c.due.late_minutes} minutes late",
                escalation,
                flow,
                stamp,
                f"{c.due.target}:{c.due.tier}",
            )
            for _, c in claimed
        ],
        "",
        ("id", "complaint_id", "detail_key"),
    )
    event_ids = {(int(cid), str(key)): int(eid) for eid, cid, key in event_rows}
    update_rows(
        conn,
        "complaint_escalations",
        ("id",),
        ("event_id",),
        [(eid, event_ids[(c.complaint_id, f"{c.due.target}:{c.due.tier}")]) for eid, c in claimed],
    )
    return claimed


# PostgreSQL: claims and their events in one statement. Each wanted tier draws its event's id
# from the events' sequence up front (a gap for the ones a conflict skips); the claims insert
# with it, the events insert for the claimed rows only, and the foreign key is checked at the
# end of the statement, when both exist. No second write of the claims (no dead rows).
_CLAIM_POSTGRES = """
WITH wanted AS MATERIALIZED (
    SELECT w.*, nextval(pg_get_serial_sequence('complaint_events', 'id')) AS event_id
    FROM unnest(%b::integer[], %b::text[], %b::text[], %b::integer[], %b::integer[],
                %b::integer[], %b::timestamptz[], %b::integer[], %b::text[], %b::text[],
                %b::text[])
         AS w(complaint_id, target, tier, notified_staff_id, elapsed_minutes, run_id,
              threshold_at, late_minutes, reason, status, note)
),
claimed AS (
    INSERT INTO complaint_escalations (complaint_id, target, tier, notified_staff_id,
        elapsed_minutes, run_id, created_at, threshold_at, late_minutes, reason, event_id)
    SELECT complaint_id, target, tier, notified_staff_id, elapsed_minutes, run_id, %s,
           threshold_at, late_minutes, reason, event_id
    FROM wanted
    ON CONFLICT (complaint_id, target, tier) DO NOTHING
    RETURNING id, complaint_id, target, tier, event_id
),
events AS (
    INSERT INTO complaint_events (id, complaint_id, at, from_status, to_status, actor_id,
        assignee_id, note, kind, source, recorded_at, detail_key)
    SELECT c.event_id, c.complaint_id, %s, w.status, w.status, NULL, w.notified_staff_id,
           w.note, 'escalation', 'flow', %s, c.target || ':' || c.tier
    FROM claimed c JOIN wanted w USING (complaint_id, target, tier)
)
SELECT id, complaint_id, target, tier FROM claimed
"""


def _claim_postgres(
    conn: Any,
    now: datetime,
    wanted: Sequence[Claimed],
    by_key: dict[tuple[int, str, str], Claimed],
    rows_by_id: dict[int, Row[Any]],
    run_id: int | None,
) -> list[tuple[int, Claimed]]:
    columns: tuple[list[Any], ...] = tuple([] for _ in range(11))
    for c in wanted:
        for column, value in zip(
            columns,
            (
                c.complaint_id,
                c.due.target,
                c.due.tier,
                c.due.notice.recipient_id,
                c.due.elapsed_minutes,
                run_id,
                c.due.threshold_at,
                c.due.late_minutes,
                (c.due.notice.reason or None) and c.due.notice.reason[:200],
                str(rows_by_id[c.complaint_id].status),
                f"{c.due.target} {c.due.tier}: {c.due.late_minutes} minutes late",
            ),
            strict=True,
        ):
            column.append(value)
    instant = now.astimezone(UTC)
    rows = conn.exec_driver_sql(_CLAIM_POSTGRES, (*columns, instant, instant, instant)).all()
    return sorted(
        (int(eid), by_key[(int(cid), str(target), str(tier))]) for eid, cid, target, tier in rows
    )


def _move_next_checks(
    session: Session, moves: Sequence[tuple[int, datetime | None, datetime | None]]
) -> None:
    """Each complaint's next check, unless a lifecycle write moved it meanwhile (PostgreSQL:
    the old value no longer matches, and that write's value stays). One set-based update."""
    conn = session.connection()
    dialect = conn.dialect.name
    update_rows(
        conn,
        "complaints",
        ("id", "next_check_at"),
        ("next_check_at",),
        [
            (cid, driver_timestamp(old, dialect), driver_timestamp(new, dialect))
            for cid, old, new in moves
            if old is not None
        ],
    )


# -- 3. every result re-checked (复查) --------------------------------------------------------


def _remind_unverified(
    session: Session,
    now: datetime,
    directory: Directory,
    hours: _Hours,
    outcome: CheckOutcome,
    run_id: int | None,
    dry_run: bool,
    limit: int,
) -> list[NewMessage]:
    days = setting(session, COMPLAINT_VERIFY_REMINDER_DAYS)
    # Each calendar's cutoff; the latest bounds the read (the partial index of the resolved
    # complaints not yet reminded), each complaint is then held to its own calendar's.
    calendar_ids: list[int | None] = [None, *hours.calendar_ids]
    cutoffs: dict[int | None, datetime] = {}
    for calendar_id in calendar_ids:
        h = hours(calendar_id)
        cutoffs[calendar_id] = verify_reminder_cutoff(
            now.astimezone(h.zone).date(), days, h.days, h.zone
        )
    candidates = session.execute(
        select(Complaint.id, Complaint.calendar_id, Complaint.resolved_at).where(
            # Literal, so SQLite matches the partial index ix_complaints_verify_pending.
            text("complaints.status = 'resolved' AND complaints.verify_reminded_at IS NULL"),
            Complaint.resolved_at < max(cutoffs.values()),
        )
    ).all()
    due_ids = sorted(
        cid
        for cid, calendar_id, resolved_at in candidates
        if resolved_at < cutoffs.get(calendar_id, cutoffs[None])
    )
    due: list[Row[Any]] = []
    for part in _chunks(due_ids, CHUNK):
        due.extend(
            session.execute(_rows_query().where(Complaint.id.in_(part)).order_by(Complaint.id))
        )
    if not due:
        return []
    if dry_run:
        claimed = {row.id for row in due}
    else:
        table = cast(Table, Complaint.__table__)
        claimed = set()
        for part in _chunks([row.id for row in due], CHUNK):
            claimed.update(
                session.execute(
                    update(table)
                    .where(table.c.id.in_(part), table.c.verify_reminded_at.is_(None))
                    .values(verify_reminded_at=now)
                    .returning(table.c.id)
                ).scalars()
            )
    org = directory.org()
    by_recipient: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    first: dict[int, int] = {}
    for row in due:
        if row.id not in claimed:
            continue
        outcome.verify_reminders += 1
        notice = resolve(_VERIFY_TIER, directory.posts(row.assignee_id, row.branch_id), org)
        if notice.recipient_id is None:
            outcome.unnotified += 1
            continue
        by_recipient[notice.recipient_id].append(_list_item(row))
        first.setdefault(notice.recipient_id, row.id)
    messages = []
    for rid, items in sorted(by_recipient.items()):
        message = _staff_message(
            directory,
            rid,
            "complaint_verify_reminder",
            now,
            _sweep_key("complaint_verify_reminder", now, rid, first[rid]),
            items,
            run_id,
            limit,
            working_days=days,
        )
        if message is not None:
            messages.append(message)
    return messages


__all__ = ["CHUNK", "OPEN_STATES", "CheckOutcome", "run_check"]
