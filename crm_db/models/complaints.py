"""Complaints with their lifecycle events, SLA policies and escalations (四个不漏)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import (
    AbcClass,
    ComplaintEventKind,
    ComplaintSource,
    ComplaintStatus,
    EscalationTier,
    EventSource,
    Severity,
    SlaTarget,
    StaffRole,
)
from crm_db.models.base import Base, str_enum
from crm_db.types import UTCDateTime, utcnow


class SlaPolicy(Base):
    """Targets by severity and customer class.

    ``first_response_minutes`` are clock minutes (24 h = 1440 for every severity unless a row
    says shorter); ``resolution_minutes`` are business minutes of the branch's calendar (its
    region's ``calendar_id``, else ``CN``). ``calendar_id`` here, when set, overrides the
    branch's calendar for this row. A row for a class wins over the class-less row of the same
    severity; both lookups are unique (the partial index covers the class-less rows).

    Escalation thresholds are percentages of a target: a warning at ``warn_pct``, the assignee
    at ``assignee_pct``, the branch manager, region manager and senior management after.
    """

    __tablename__ = "sla_policies"
    __table_args__ = (
        UniqueConstraint("severity", "abc_class"),
        Index(
            "uq_sla_policies_severity_classless",
            "severity",
            unique=True,
            sqlite_where=text("abc_class IS NULL"),
            postgresql_where=text("abc_class IS NULL"),
        ),
        CheckConstraint("first_response_minutes > 0", name="first_response_positive"),
        CheckConstraint("resolution_minutes > 0", name="resolution_positive"),
        CheckConstraint(
            "0 < warn_pct AND warn_pct < assignee_pct AND assignee_pct <= branch_pct "
            "AND branch_pct < region_pct AND region_pct < executive_pct",
            name="thresholds_increasing",
        ),
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
    assignee_pct: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    branch_pct: Mapped[int] = mapped_column(Integer, default=100)
    region_pct: Mapped[int] = mapped_column(Integer, default=150)
    executive_pct: Mapped[int] = mapped_column(Integer, default=200)
    # Senior management hears of such complaints at intake (critical ones, A-class high ones).
    notify_executive_at_intake: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


class Complaint(Base):
    """A complaint. Its events (``complaint_events``) are the source of truth: status, the
    timestamps, the paused minutes, ``reopened_count`` and the due times are written with them
    (``tasks.complaints.lifecycle``). The targets are copied from the policy at intake, so
    editing a policy changes an open complaint only through ``crm complaint recompute``."""

    __tablename__ = "complaints"
    __table_args__ = (
        Index("ix_complaints_status_received", "status", "received_at"),
        Index("ix_complaints_customer", "customer_id"),
        Index("ix_complaints_next_check_at", "next_check_at"),
        # The reminder sweep's pending set: resolved, not yet reminded (small and partial).
        Index(
            "ix_complaints_verify_pending",
            "resolved_at",
            sqlite_where=text("status = 'resolved' AND verify_reminded_at IS NULL"),
            postgresql_where=text("status = 'resolved' AND verify_reminded_at IS NULL"),
        ),
        Index(
            "uq_complaints_source_ref",
            "source",
            "source_ref",
            unique=True,
            sqlite_where=text("source_ref IS NOT NULL"),
            postgresql_where=text("source_ref IS NOT NULL"),
        ),
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
    # Internal: customers never see it (their emails show ``customer_title``).
    description: Mapped[str] = mapped_column(Text, default="")
    customer_title: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[ComplaintSource] = mapped_column(
        str_enum(ComplaintSource, "source", 20),
        default=ComplaintSource.IMPORT,
        server_default=ComplaintSource.IMPORT.value,
    )
    # What raised it, e.g. ``revisit:123``: unique per source, so a repeat opens nothing twice.
    source_ref: Mapped[str | None] = mapped_column(String(80))
    root_cause: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The resolution clock pauses while waiting on the customer: paused business minutes so
    # far, and since when.
    paused_business_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The targets in force at intake (copied from the policy) and the calendar of the branch.
    first_response_minutes: Mapped[int | None] = mapped_column(Integer)  # clock minutes
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)  # business minutes
    warn_pct: Mapped[int | None] = mapped_column(Integer)
    assignee_pct: Mapped[int | None] = mapped_column(Integer)
    branch_pct: Mapped[int | None] = mapped_column(Integer)
    region_pct: Mapped[int | None] = mapped_column(Integer)
    executive_pct: Mapped[int | None] = mapped_column(Integer)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("business_calendars.id"))
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Moved by pause/resume/reopen; while the clock is stopped it keeps its last value.
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the complaint check must look at it next: the next escalation tier not yet reached
    # falls due (NULL: nothing can until the complaint changes). Written by every lifecycle
    # write and by the check (``tasks.complaints.checks``).
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The branch manager was reminded that it is resolved but not verified (复查): once.
    verify_reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ComplaintEvent(Base):
    """Each lifecycle event, so the SLA clock can be replayed and audited. ``at`` is when it
    happened (imports give it explicitly), ``recorded_at`` when it was written; the unique key
    makes a re-import or a re-run write nothing twice."""

    __tablename__ = "complaint_events"
    __table_args__ = (UniqueConstraint("complaint_id", "kind", "at", "detail_key"),)

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
    kind: Mapped[ComplaintEventKind] = mapped_column(
        str_enum(ComplaintEventKind, "kind", 20),
        default=ComplaintEventKind.TRANSITION,
        server_default=ComplaintEventKind.TRANSITION.value,
    )
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    source: Mapped[EventSource | None] = mapped_column(str_enum(EventSource, "source", 20))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    detail_key: Mapped[str] = mapped_column(String(60), default="", server_default="")


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
    event_id: Mapped[int | None] = mapped_column(ForeignKey("complaint_events.id"))
    threshold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the tier was due
    late_minutes: Mapped[int | None] = mapped_column(Integer)
    # Why it went to someone else than the tier's holder: inactive, vacant, cycle.
    reason: Mapped[str | None] = mapped_column(String(200))


class ComplaintFeedbackRoute(Base):
    """四个不漏: the department each complaint category is fed back to (policy rows)."""

    __tablename__ = "complaint_feedback_routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(80), unique=True)
    department: Mapped[StaffRole] = mapped_column(str_enum(StaffRole, "department", 40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
