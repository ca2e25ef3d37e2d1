"""Claiming due outbox rows with a lease, in one short write transaction per batch.

A row is due when it is ``pending`` and its ``next_attempt_at`` has come, or when it is
``sending`` under a lease that has expired (its sender crashed or was killed: the claim comes
back). Claiming sets ``status=sending``, ``lease_until`` and ``lease_owner``. It does not count an
attempt: ``attempts`` counts SMTP transactions and is written with the transaction's outcome
(``settle``), so a claim whose sender died before it spoke to the server costs nothing. Taking
back an expired lease notes it at the front of ``last_error`` (the row's short history).

PostgreSQL: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING``, so
concurrent senders take disjoint rows without waiting for each other. SQLite has no row locks:
the claim runs under ``BEGIN IMMEDIATE`` (the database's single write lock, taken up front so the
transaction never fails half-way with a stale snapshot), and the UPDATE repeats the due condition.
The transaction ends before any SMTP traffic starts.

The write transaction returns only what the claim changes or decides on (``claim_leases``: ids,
attempts, due time, lease, history); the message details are read after it commits
(``load_claimed``), without the write lock. On SQLite that lock is also what the sent marks
need, so it is held for the UPDATE statements alone (see ``deliver``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    func,
    literal,
    or_,
    select,
    update,
)

from crm_db.enums import OutboxStatus
from crm_db.models import Customer, OutboxAttachment, OutboxMessage
from tasks.common.write_lock import for_update, write_transaction
from tasks.mail.classify import UNKNOWN_PREFIX
from tasks.mail.message import Attachment

_OUTBOX = cast(Table, OutboxMessage.__table__)
_CUSTOMERS = cast(Table, Customer.__table__)
_ATTACHMENTS = cast(Table, OutboxAttachment.__table__)


@dataclass(frozen=True, slots=True)
class Consent:
    """A customer's consent as it is now, read at claim time (not at enqueue time)."""

    unsubscribed: bool
    marketing_opt_out: bool
    survey_opt_out: bool


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    kind: str
    locale: str
    recipient_email: str
    recipient_name: str
    customer_id: int | None
    staff_id: int | None
    context: dict[str, Any]
    message_id: str
    attempts: int  # the SMTP transaction this claim would be: transactions so far + 1
    had_unknown: bool  # an earlier transaction ended with no reply to DATA
    next_attempt_at: datetime
    lease_until: datetime
    consent: Consent | None  # None for rows without a customer
    created_at: datetime | None = None  # when the row was queued: the message's Date
    attachments: tuple[Attachment, ...] = ()


def due_condition(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(_OUTBOX.c.status == OutboxStatus.PENDING, _OUTBOX.c.next_attempt_at <= now),
        and_(_OUTBOX.c.status == OutboxStatus.SENDING, _OUTBOX.c.lease_until <= now),
    )


# What the claim's UPDATE returns: small columns only, so the write lock is not held while
# rows are fetched and converted (contexts are JSON documents).
_RETURNED = (
    _OUTBOX.c.id,
    _OUTBOX.c.attempts,
    _OUTBOX.c.next_attempt_at,
    _OUTBOX.c.lease_until,
    _OUTBOX.c.last_error,
)
# The rest of a claimed row, read after the claim committed (the row is ours under the lease,
# and none of these columns changes after the row is queued).
_DETAILS = (
    _OUTBOX.c.id,
    _OUTBOX.c.kind,
    _OUTBOX.c.locale,
    _OUTBOX.c.recipient_email,
    _OUTBOX.c.recipient_name,
    _OUTBOX.c.customer_id,
    _OUTBOX.c.staff_id,
    _OUTBOX.c.context,
    _OUTBOX.c.message_id,
    _OUTBOX.c.created_at,
)

# Noted when an expired lease is taken back: its holder died (or hung) before writing an outcome.
LEASE_EXPIRED_NOTE = "lease expired with no recorded outcome, claimed again; "


def _claim_where(
    conn: Connection,
    where: ColumnElement[bool],
    *,
    order_by: Any,
    limit: int,
    now: datetime,
    lease_until: datetime,
    owner: str,
    reclaim: bool = False,
) -> list[Any]:
    if limit <= 0:
        return []
    ids = select(_OUTBOX.c.id).where(where).order_by(order_by).limit(limit)
    if conn.dialect.name == "postgresql":
        # A MATERIALIZED CTE runs the locking SELECT exactly once. As an ``IN (subquery)`` the
        # planner may re-run it per row, and with SKIP LOCKED each run can pick different rows,
        # claiming more than ``limit``.
        due = for_update(ids, skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        matched = _OUTBOX.c.id == due.c.id
    else:
        matched = _OUTBOX.c.id.in_(ids.scalar_subquery())
    statement = (
        update(_OUTBOX)
        # Repeating the due condition keeps the UPDATE correct even where the SELECT could not
        # lock (SQLite): a row claimed by someone else in between is simply not matched.
        .where(matched, due_condition(now))
        .values(
            status=OutboxStatus.SENDING,
            lease_until=lease_until,
            lease_owner=owner,
            **({"last_error": _noted(LEASE_EXPIRED_NOTE)} if reclaim else {}),
        )
        .returning(*_RETURNED)
    )
    return list(conn.execute(statement).all())


def _noted(note: str) -> ColumnElement[str]:
    """``note`` in front of the row's ``last_error``, within the column's 500 characters."""
    previous = func.coalesce(_OUTBOX.c.last_error, literal(""))
    return func.substr(literal(note) + previous, 1, 500)


@dataclass(frozen=True, slots=True)
class Lease:
    """One row taken by a claim: what the write transaction returned."""

    id: int
    attempts: int  # SMTP transactions so far
    next_attempt_at: datetime
    lease_until: datetime
    last_error: str | None


def claim_leases(
    bind: Engine | Connection, *, now: datetime, lease_until: datetime, owner: str, limit: int
) -> list[Lease]:
    """Claim up to ``limit`` due rows for ``owner`` until ``lease_until``, oldest due first, in
    one short write transaction on ``bind`` (an engine, or a connection with no transaction
    open).

    Expired leases are taken before pending rows: they were due earliest. Two index-friendly
    statements rather than one ``OR``, so each uses ``ix_email_outbox_status_next``.
    """
    with write_transaction(bind) as conn:
        rows = _claim_where(
            conn,
            and_(_OUTBOX.c.status == OutboxStatus.SENDING, _OUTBOX.c.lease_until <= now),
            order_by=_OUTBOX.c.lease_until,
            limit=limit,
            now=now,
            lease_until=lease_until,
            owner=owner,
            reclaim=True,
        )
        rows += _claim_where(
            conn,
            and_(_OUTBOX.c.status == OutboxStatus.PENDING, _OUTBOX.c.next_attempt_at <= now),
            order_by=_OUTBOX.c.next_attempt_at,
            limit=limit - len(rows),
            now=now,
            lease_until=lease_until,
            owner=owner,
        )
    leases = [Lease(r.id, r.attempts, r.next_attempt_at, r.lease_until, r.last_error) for r in rows]
    leases.sort(key=lambda lease: (lease.next_attempt_at, lease.id))
    return leases


def load_claimed(engine: Engine, leases: list[Lease]) -> list[ClaimedMessage]:
    """The claimed rows with everything needed to build and send them (details, the
    customers' consent as it is now, attachments), in the order of ``leases``."""
    if not leases:
        return []
    ids = sorted(lease.id for lease in leases)
    details: dict[int, Any] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            statement = select(*_DETAILS).where(_OUTBOX.c.id.in_(ids[start : start + 5000]))
            details.update((row.id, row) for row in conn.execute(statement))
    consents = _load_consent(
        engine, {r.customer_id for r in details.values() if r.customer_id is not None}
    )
    attachments = _load_attachments(engine, ids)
    claimed = []
    for lease in leases:
        r = details[lease.id]
        claimed.append(
            ClaimedMessage(
                id=r.id,
                kind=r.kind,
                locale=r.locale,
                recipient_email=r.recipient_email,
                recipient_name=r.recipient_name,
                customer_id=r.customer_id,
                staff_id=r.staff_id,
                context=r.context or {},
                message_id=r.message_id,
                attempts=lease.attempts + 1,
                had_unknown=UNKNOWN_PREFIX in (lease.last_error or ""),
                next_attempt_at=lease.next_attempt_at,
                lease_until=lease.lease_until,
                consent=consents.get(r.customer_id) if r.customer_id is not None else None,
                created_at=r.created_at,
                attachments=attachments.get(r.id, ()),
            )
        )
    return claimed


def claim_batch(
    engine: Engine, *, now: datetime, lease_until: datetime, owner: str, limit: int
) -> list[ClaimedMessage]:
    """``claim_leases`` then ``load_claimed``: claim up to ``limit`` due rows for ``owner``."""
    leases = claim_leases(engine, now=now, lease_until=lease_until, owner=owner, limit=limit)
    return load_claimed(engine, leases)


def renew_leases(bind: Engine | Connection, *, owner: str, lease_until: datetime) -> int:
    """Extend every lease ``owner`` still holds (rows in ``sending`` under its name) to
    ``lease_until``, in one short write transaction; returns how many rows it extended. A row
    another sender took after our lease expired is no longer ours and is left alone."""
    with write_transaction(bind) as conn:
        result = conn.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.status == OutboxStatus.SENDING, _OUTBOX.c.lease_owner == owner)
            .values(lease_until=lease_until)
        )
    return int(result.rowcount)


def _load_consent(engine: Engine, customer_ids: set[int]) -> dict[int, Consent]:
    if not customer_ids:
        return {}
    found: dict[int, Consent] = {}
    ids = sorted(customer_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            statement = select(
                _CUSTOMERS.c.id,
                _CUSTOMERS.c.unsubscribed_at,
                _CUSTOMERS.c.marketing_opt_out,
                _CUSTOMERS.c.survey_opt_out,
            ).where(_CUSTOMERS.c.id.in_(ids[start : start + 5000]))
            for row in conn.execute(statement):
                found[row.id] = Consent(
                    unsubscribed=row.unsubscribed_at is not None,
                    marketing_opt_out=bool(row.marketing_opt_out),
                    survey_opt_out=bool(row.survey_opt_out),
                )
    return found


def _load_attachments(engine: Engine, outbox_ids: list[int]) -> dict[int, tuple[Attachment, ...]]:
    """The attachments of these rows, in the order they were queued (one query per 5000 rows;
    most batches have none, and then it reads an index only)."""
    found: dict[int, list[Attachment]] = {}
    ids = sorted(outbox_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            statement = (
                select(
                    _ATTACHMENTS.c.outbox_id,
                    _ATTACHMENTS.c.filename,
                    _ATTACHMENTS.c.content_type,
                    _ATTACHMENTS.c.data,
                    _ATTACHMENTS.c.content_id,
                )
                .where(_ATTACHMENTS.c.outbox_id.in_(ids[start : start + 5000]))
                .order_by(_ATTACHMENTS.c.outbox_id, _ATTACHMENTS.c.position)
            )
            for row in conn.execute(statement):
                found.setdefault(row.outbox_id, []).append(
                    Attachment(row.filename, row.content_type, bytes(row.data), row.content_id)
                )
    return {key: tuple(value) for key, value in found.items()}


def count_due(engine: Engine, *, now: datetime) -> dict[str, int]:
    """Due rows per kind (what a run would claim now): the dry-run view."""
    statement = (
        select(_OUTBOX.c.kind, func.count())
        .where(due_condition(now))
        .group_by(_OUTBOX.c.kind)
        .order_by(_OUTBOX.c.kind)
    )
    with engine.connect() as conn:
        return {kind: int(n) for kind, n in conn.execute(statement).all()}
