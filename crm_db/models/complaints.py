"""Complaints with their lifecycle events, SLA policies and escalations (四个不漏)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import AbcClass, ComplaintStatus, EscalationTier, Severity, SlaTarget
from crm_db.models.base import Base, str_enum
from crm_db.types import UTCDateTime, utcnow


class SlaPolicy(Base):
    """Targets by severity and customer class, in minutes of the calendar (NULL calendar = 24x7).

    Escalation thresholds are percentages of the resolution target: the branch manager at 100 %,
    the region manager at 150 %, senior management at 200 % by default; a warning at ``warn_pct``.
    """

    __tablename__ = "sla_policies"
    __table_args__ = (
        UniqueConstraint("severity", "abc_class"),
        CheckConstraint("first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes >= first_response_minutes", name="resolution_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, "severity"))
    # NULL: applies to every class without a more specific row.
    abc_class: Mapped[AbcClass | None] = mapped_column(str_enum(AbcClass, "abc_class"))
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id"))
    warn_pct: Mapped[int] = mapped_column(Integer, default=80)
    branch_pct: Mapped[int] = mapped_column(Integer, default=100)
    region_pct: Mapped[int] = mapped_column(Integer, default=150)
    executive_pct: Mapped[int] = mapped_column(Integer, default=200)


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        Index("ix_complaints_status_received", "status", "received_at"),
        Index("ix_complaints_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"), index=True)
    category: Mapped[str] = mapped_column(String(80))
    product: Mapped[str | None] = mapped_column(String(80))
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, "severity"))
    status: Mapped[ComplaintStatus] = mapped_column(
        str_enum(ComplaintStatus, "status"), default=ComplaintStatus.NEW
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id"))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    root_cause: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The SLA clock pauses while waiting on the customer: paused time so far, and since when.
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComplaintEvent(Base):
    """Each lifecycle transition, so the SLA clock can be replayed and audited."""

    __tablename__ = "complaint_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_status: Mapped[ComplaintStatus | None] = mapped_column(
        str_enum(ComplaintStatus, "from_status")
    )
    to_status: Mapped[ComplaintStatus] = mapped_column(str_enum(ComplaintStatus, "to_status"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    note: Mapped[str | None] = mapped_column(Text)


class ComplaintEscalation(Base):
    """One row per tier and target: the unique key is what makes 'each tier notified once' hold."""

    __tablename__ = "complaint_escalations"
    __table_args__ = (UniqueConstraint("complaint_id", "target", "tier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="CASCADE"))
    target: Mapped[SlaTarget] = mapped_column(str_enum(SlaTarget, "target"))
    tier: Mapped[EscalationTier] = mapped_column(str_enum(EscalationTier, "tier"))
    notified_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    elapsed_minutes: Mapped[int] = mapped_column(Integer)
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
