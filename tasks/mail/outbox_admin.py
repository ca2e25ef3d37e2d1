"""Operator views of the outbox and the one operator action on it (re-queue failed rows).

Aggregated in SQL (counts per status and kind), so it stays cheap on millions of rows. Error
texts can quote addresses (``550 <li.na@example.com> unknown``): they are masked here, before
they reach a terminal, a log or an artifact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from crm_core.masking import mask_text
from crm_db.enums import OutboxStatus
from crm_db.models import AddressFlagClearance, Customer, OutboxMessage, Staff
from tasks.mail.classify import SendFailure, Stage, client_refusal

_OUTBOX = cast(Table, OutboxMessage.__table__)
_CUSTOMERS = cast(Table, Customer.__table__)
_STAFF = cast(Table, Staff.__table__)
_CLEARANCES = cast(Table, AddressFlagClearance.__table__)
LAST_ERRORS = 10


@dataclass(frozen=True)
class OutboxStatusReport:
    total: int
    by_status: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    oldest_pending_s: float | None
    last_errors: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_status": self.by_status,
            "by_kind": self.by_kind,
            "oldest_pending_s": self.oldest_pending_s,
            "last_errors": self.last_errors,
        }


@dataclass(frozen=True)
class RetryResult:
    requeued: int
    flags_cleared: int


def outbox_status(
    engine: Engine, *, now: datetime, last_errors: int = LAST_ERRORS
) -> OutboxStatusReport:
    """Counts per status and per kind (and status), the age of the oldest pending row (by when
    it was queued), and the most recent errors with addresses masked."""
    with engine.connect() as conn:
        pairs = conn.execute(
            select(_OUTBOX.c.kind, _OUTBOX.c.status, func.count())
            .group_by(_OUTBOX.c.kind, _OUTBOX.c.status)
            .order_by(_OUTBOX.c.kind, _OUTBOX.c.status)
        ).all()
        oldest = conn.scalar(
            select(func.min(_OUTBOX.c.created_at)).where(
                _OUTBOX.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
            )
        )
        errors = conn.execute(
            select(
                _OUTBOX.c.id,
                _OUTBOX.c.kind,
                _OUTBOX.c.status,
                _OUTBOX.c.attempts,
                _OUTBOX.c.last_error,
            )
            .where(_OUTBOX.c.last_error.is_not(None))
            .where(_OUTBOX.c.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED]))
            .order_by(_OUTBOX.c.id.desc())
            .limit(last_errors)
        ).all()
    by_status: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    for kind, status, count in pairs:
        status_name = OutboxStatus(status).value
        by_status[status_name] = by_status.get(status_name, 0) + int(count)
        by_kind.setdefault(kind, {})[status_name] = int(count)
    oldest_s = None
    if oldest is not None:
        if oldest.tzinfo is None:  # MIN() keeps the column type; this is only a safety net
            oldest = oldest.replace(tzinfo=UTC)
        oldest_s = round(max((now - oldest).total_seconds(), 0.0), 1)
    return OutboxStatusReport(
        total=sum(by_status.values()),
        by_status=by_status,
        by_kind=by_kind,
        oldest_pending_s=oldest_s,
        last_errors=[
            {
                "id": row.id,
                "kind": row.kind,
                "status": OutboxStatus(row.status).value,
                "attempts": row.attempts,
                "error": mask_text(row.last_error or ""),
            }
            for row in errors
        ],
    )


_FAILURE_TEXT = re.compile(r"^recipient: (\d{3}) (.*)$", re.DOTALL)


def _refused_client(last_error: str | None) -> bool:
    """Whether a failed row's error is a refusal of the client (``classify.client_refusal``),
    i.e. a flag it set says nothing about the address."""
    match = _FAILURE_TEXT.match(last_error or "")
    if match is None:
        return False
    failure = SendFailure(Stage.RECIPIENT, int(match.group(1)), match.group(2))
    return client_refusal(failure) is not None


def _clear_flags(conn: Connection, *, now: datetime, kind: str | None) -> int:
    """Clear the undeliverable flags that failed rows (about to be retried) set when the relay
    refused the client; each cleared flag is recorded in ``address_flag_clearances``. A flag
    is cleared only while the person still has the refused address."""
    query = select(
        _OUTBOX.c.id,
        _OUTBOX.c.customer_id,
        _OUTBOX.c.staff_id,
        _OUTBOX.c.recipient_email,
        _OUTBOX.c.last_error,
    ).where(_OUTBOX.c.status == OutboxStatus.FAILED, _OUTBOX.c.last_error.like("recipient: %"))
    if kind is not None:
        query = query.where(_OUTBOX.c.kind == kind)
    cleared = 0
    for row in conn.execute(query):
        if not _refused_client(row.last_error):
            continue
        for table, person_id, column in (
            (_CUSTOMERS, row.customer_id, "customer_id"),
            (_STAFF, row.staff_id, "staff_id"),
        ):
            if person_id is None:
                continue
            result = conn.execute(
                update(table)
                .where(
                    table.c.id == person_id,
                    table.c.email_undeliverable.is_(True),
                    func.lower(func.trim(table.c.email)) == row.recipient_email.strip().lower(),
                )
                .values(email_undeliverable=False)
            )
            if result.rowcount:
                cleared += 1
                conn.execute(
                    insert(_CLEARANCES).values(
                        outbox_id=row.id,
                        reason=mask_text(row.last_error or "")[:500],
                        cleared_at=now,
                        **{column: person_id},
                    )
                )
    return cleared


def retry_failed(
    engine: Engine, *, now: datetime, kind: str | None = None, clear_flags: bool = False
) -> RetryResult:
    """Put failed rows (of ``kind``, or all) back in the queue, due now, with a fresh set of
    attempts. Their Message-IDs stay: a receiver that did get one can still tell a repeat.
    With ``clear_flags``, first clear the flags those rows set because the relay refused the
    client (audited). One transaction: all of it or nothing."""
    statement = (
        update(_OUTBOX)
        .where(_OUTBOX.c.status == OutboxStatus.FAILED)
        .values(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            lease_owner=None,
        )
    )
    if kind is not None:
        statement = statement.where(_OUTBOX.c.kind == kind)
    with engine.begin() as conn:
        cleared = _clear_flags(conn, now=now, kind=kind) if clear_flags else 0
        requeued = int(conn.execute(statement).rowcount or 0)
    return RetryResult(requeued=requeued, flags_cleared=cleared)
