"""Operator views of the outbox and the one operator action on it (re-queue failed rows).

Aggregated in SQL (counts per status and kind), so it stays cheap on millions of rows. Error
texts can quote addresses (``550 <li.na@example.com> unknown``): they are masked here, before
they reach a terminal, a log or an artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, func, select, update

from crm_core.masking import mask_text
from crm_db.enums import OutboxStatus
from crm_db.models import OutboxMessage

_OUTBOX = cast(Table, OutboxMessage.__table__)
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


def retry_failed(engine: Engine, *, now: datetime, kind: str | None = None) -> int:
    """Put failed rows (of ``kind``, or all) back in the queue, due now, with a fresh set of
    attempts. Their Message-IDs stay: a receiver that did get one can still tell a repeat."""
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
        return int(conn.execute(statement).rowcount or 0)
