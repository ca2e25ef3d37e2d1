"""Writing the results of send attempts back to the outbox, many rows per short transaction.

Each settlement is one row's new state (sent, retry later, failed, suppressed, released). They
are applied with ``executemany`` grouped by outcome, in one write transaction per group of rows,
so marking costs a few statements per group rather than a round trip per message.

Every UPDATE except "sent" is conditional on our lease (``status='sending' AND lease_owner=me``):
if our lease expired and another sender took the row, we must not undo its work. "Sent" is
written whatever the lease says: the server accepted the message, and that is the truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Integer, Table, Update, bindparam, func, update

from crm_db.enums import OutboxStatus
from crm_db.models import Customer, OutboxMessage, Staff
from tasks.common.write_lock import write_transaction

_OUTBOX = cast(Table, OutboxMessage.__table__)

SMTP_RESPONSE_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Settlement:
    id: int
    status: OutboxStatus  # SENT, PENDING (retry or release), FAILED, SUPPRESSED
    at: datetime  # when the outcome was known (sent_at for SENT)
    smtp_response: str | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None  # retries only
    release: bool = False  # never attempted: back to pending, attempts unchanged
    attempts: int | None = None  # the transaction count after this outcome; None: no transaction
    unknown: bool = False  # (retry) the DATA reply never came: counted apart in the report
    deferred: bool = False  # (release) the relay's quota is full: counted apart in the report


@dataclass(frozen=True, slots=True)
class UndeliverableAddress:
    """A recipient address a server refused permanently (5xx on RCPT)."""

    email: str
    customer_id: int | None
    staff_id: int | None


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:SMTP_RESPONSE_LIMIT]


# ``attempts`` counts SMTP transactions: written with each transaction's outcome, kept as it is
# by outcomes that involved no transaction (suppressed, unbuildable, released).
_ATTEMPTS = func.coalesce(bindparam("b_attempts", type_=Integer), _OUTBOX.c.attempts)

_MINE = (
    (_OUTBOX.c.id == bindparam("b_id"))
    & (_OUTBOX.c.status == OutboxStatus.SENDING)
    & (_OUTBOX.c.lease_owner == bindparam("b_owner"))
)

_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.status != OutboxStatus.SENT)
    .values(
        status=OutboxStatus.SENT,
        sent_at=bindparam("b_at"),
        smtp_response=bindparam("b_response"),
        last_error=None,
        attempts=_ATTEMPTS,
        lease_until=None,
        lease_owner=None,
    )
)

_MARK_RETRY = (
    update(_OUTBOX)
    .where(_MINE)
    .values(
        status=OutboxStatus.PENDING,
        next_attempt_at=bindparam("b_next"),
        smtp_response=bindparam("b_response"),
        last_error=bindparam("b_error"),
        attempts=_ATTEMPTS,
        lease_until=None,
        lease_owner=None,
    )
)

_MARK_RELEASED = (
    update(_OUTBOX)
    .where(_MINE)
    .values(
        status=OutboxStatus.PENDING,
        last_error=bindparam("b_error"),
        lease_until=None,
        lease_owner=None,
    )
)


def _mark_final(status: OutboxStatus) -> Update:
    return (
        update(_OUTBOX)
        .where(_MINE)
        .values(
            status=status,
            smtp_response=bindparam("b_response"),
            last_error=bindparam("b_error"),
            attempts=_ATTEMPTS,
            lease_until=None,
            lease_owner=None,
        )
    )


_MARK_FAILED = _mark_final(OutboxStatus.FAILED)
_MARK_SUPPRESSED = _mark_final(OutboxStatus.SUPPRESSED)


def _flag_statement(table: Table) -> Update:
    # Only while the person still has the refused address: if it changed since the message was
    # queued, the new address is innocent.
    return (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            func.lower(func.trim(table.c.email)) == bindparam("b_email"),
        )
        .values(email_undeliverable=True)
    )


_FLAG_CUSTOMER = _flag_statement(cast(Table, Customer.__table__))
_FLAG_STAFF = _flag_statement(cast(Table, Staff.__table__))


def apply_settlements(
    bind: Engine | Connection,
    settlements: Sequence[Settlement],
    *,
    owner: str,
    undeliverable: Sequence[UndeliverableAddress] = (),
) -> None:
    """Write ``settlements`` (and address flags) in one short transaction on ``bind``."""
    if not settlements and not undeliverable:
        return
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in settlements:
        if s.status is OutboxStatus.SENT:
            groups["sent"].append(
                {
                    "b_id": s.id,
                    "b_at": s.at,
                    "b_response": _clip(s.smtp_response),
                    "b_attempts": s.attempts,
                }
            )
        elif s.status is OutboxStatus.PENDING and s.release:
            groups["released"].append(
                {"b_id": s.id, "b_owner": owner, "b_error": _clip(s.last_error)}
            )
        elif s.status is OutboxStatus.PENDING:
            groups["retry"].append(
                {
                    "b_id": s.id,
                    "b_owner": owner,
                    "b_next": s.next_attempt_at or s.at,
                    "b_response": _clip(s.smtp_response),
                    "b_error": _clip(s.last_error),
                    "b_attempts": s.attempts,
                }
            )
        elif s.status in (OutboxStatus.FAILED, OutboxStatus.SUPPRESSED):
            groups[s.status.value].append(
                {
                    "b_id": s.id,
                    "b_owner": owner,
                    "b_response": _clip(s.smtp_response),
                    "b_error": _clip(s.last_error),
                    "b_attempts": s.attempts,
                }
            )
        else:
            raise ValueError(f"cannot settle a row as {s.status}")
    statements = {
        "sent": _MARK_SENT,
        "released": _MARK_RELEASED,
        "retry": _MARK_RETRY,
        "failed": _MARK_FAILED,
        "suppressed": _MARK_SUPPRESSED,
    }
    with write_transaction(bind) as conn:
        for name, params in groups.items():
            conn.execute(statements[name], params)
        customers = [
            {"b_id": u.customer_id, "b_email": u.email.strip().lower()}
            for u in undeliverable
            if u.customer_id is not None
        ]
        staff = [
            {"b_id": u.staff_id, "b_email": u.email.strip().lower()}
            for u in undeliverable
            if u.staff_id is not None
        ]
        if customers:
            conn.execute(_FLAG_CUSTOMER, customers)
        if staff:
            conn.execute(_FLAG_STAFF, staff)
