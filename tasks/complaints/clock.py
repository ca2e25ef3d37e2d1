"""A complaint's SLA clock as the pure escalation rules see it, and the instant the complaint
check must look at it next (``complaints.next_check_at``), from its row and the tiers it has
reached. Shared by the lifecycle writes and the check, so both compute it the same way."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.models import ComplaintEscalation
from tasks.complaints.rules.escalation import ClockInput, Thresholds, next_check_at
from tasks.rules.business_time import BusinessHours


class ClockRow(Protocol):
    """The complaint columns the clock reads (an ORM row or a SQL result row)."""

    received_at: datetime
    status: Any
    first_response_minutes: int | None
    resolution_minutes: int | None
    warn_pct: int | None
    assignee_pct: int | None
    branch_pct: int | None
    region_pct: int | None
    executive_pct: int | None
    acknowledged_at: datetime | None
    paused_business_minutes: int
    paused_since: datetime | None


def clock_of(row: ClockRow, hours: BusinessHours) -> ClockInput:
    return ClockInput(
        received_at=row.received_at,
        status=str(row.status),
        first_response_minutes=row.first_response_minutes,
        resolution_minutes=row.resolution_minutes,
        thresholds=Thresholds(
            warn_pct=row.warn_pct,
            assignee_pct=row.assignee_pct,
            branch_pct=row.branch_pct,
            region_pct=row.region_pct,
            executive_pct=row.executive_pct,
        ),
        hours=hours,
        acknowledged_at=row.acknowledged_at,
        paused_business_minutes=row.paused_business_minutes or 0,
        paused_since=row.paused_since,
    )


def reached_tiers(session: Session, complaint_id: int) -> set[tuple[str, str]]:
    rows = session.execute(
        select(ComplaintEscalation.target, ComplaintEscalation.tier).where(
            ComplaintEscalation.complaint_id == complaint_id
        )
    )
    return {(str(target), str(tier)) for target, tier in rows.tuples()}


def next_check(
    row: ClockRow, hours: BusinessHours, reached: Iterable[tuple[str, str]]
) -> datetime | None:
    """When the check must look next (``None``: not until the complaint changes)."""
    return next_check_at(clock_of(row, hours), reached)


__all__ = ["ClockRow", "clock_of", "next_check", "reached_tiers"]
