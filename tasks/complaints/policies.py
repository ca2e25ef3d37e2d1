"""SLA policies and the branch's calendar, read from the database for the pure SLA rules."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.models import Branch, Region, SlaPolicy
from tasks.common.calendars import load_business_hours, load_business_hours_by_id
from tasks.complaints.rules.sla import Policy, Targets
from tasks.rules.business_time import BusinessHours

COMPANY_CALENDAR = "CN"


def _policy(row: SlaPolicy) -> Policy:
    return Policy(
        policy_id=row.id,
        code=row.code,
        severity=row.severity,
        abc_class=row.abc_class,
        targets=Targets(
            first_response_minutes=row.first_response_minutes,
            resolution_minutes=row.resolution_minutes,
            warn_pct=row.warn_pct,
            assignee_pct=row.assignee_pct,
            branch_pct=row.branch_pct,
            region_pct=row.region_pct,
            executive_pct=row.executive_pct,
        ),
        calendar_id=row.calendar_id,
        notify_executive_at_intake=row.notify_executive_at_intake,
    )


def load_policies(session: Session) -> list[Policy]:
    return [_policy(row) for row in session.scalars(select(SlaPolicy).order_by(SlaPolicy.id))]


def branch_calendar_id(session: Session, branch_id: int | None) -> int | None:
    """The calendar of the branch's region (``None``: the company calendar)."""
    if branch_id is None:
        return None
    return session.scalar(
        select(Region.calendar_id)
        .join(Branch, Branch.region_id == Region.id)
        .where(Branch.id == branch_id)
    )


def complaint_hours(session: Session, calendar_id: int | None) -> BusinessHours:
    """The business hours a complaint's resolution clock runs on (``None``: ``CN``)."""
    if calendar_id is None:
        return load_business_hours(session, COMPANY_CALENDAR)
    return load_business_hours_by_id(session, calendar_id)
