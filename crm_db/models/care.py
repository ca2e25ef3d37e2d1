"""Revisit policies and revisits (定期回访), satisfaction surveys (满意度调查)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import (
    AbcClass,
    ContactChannel,
    InvitationStatus,
    ResponseSource,
    RevisitStatus,
    SurveyKind,
    SurveyTrigger,
)
from crm_db.models.base import Base, str_enum
from crm_db.types import UTCDateTime, utcnow


class RevisitPolicy(Base):
    """Cadence and channel per class (defaults: A 30 d visit, B 90 d phone, C 180 d email)."""

    __tablename__ = "revisit_policies"
    __table_args__ = (CheckConstraint("cadence_days > 0", name="cadence_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    abc_class: Mapped[AbcClass] = mapped_column(str_enum(AbcClass, "abc_class"), unique=True)
    cadence_days: Mapped[int] = mapped_column(Integer)
    channel: Mapped[ContactChannel] = mapped_column(str_enum(ContactChannel, "channel"))
    overdue_after_days: Mapped[int] = mapped_column(Integer, default=7)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Revisit(Base):
    __tablename__ = "revisits"
    __table_args__ = (
        UniqueConstraint("customer_id", "due_on"),
        # At most one open revisit per customer, enforced by the database on both backends.
        Index(
            "uq_revisits_one_open_per_customer",
            "customer_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_revisits_status_due", "status", "due_on"),
        # The planner's load query: an assignee's revisits planned from a day on (0010).
        Index("ix_revisits_assignee_planned", "assignee_id", "planned_for"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    abc_class: Mapped[AbcClass] = mapped_column(str_enum(AbcClass, "abc_class"))
    channel: Mapped[ContactChannel] = mapped_column(str_enum(ContactChannel, "channel"))
    due_on: Mapped[date] = mapped_column(Date)
    # The working day the revisit is planned for, within its assignee's daily capacity (a
    # backlog spreads over the following working days); escalation counts from it. NULL:
    # planned on ``due_on``. Never before ``due_on``.
    planned_for: Mapped[date | None] = mapped_column(Date)
    status: Mapped[RevisitStatus] = mapped_column(
        str_enum(RevisitStatus, "status"), default=RevisitStatus.OPEN
    )
    needs_reassignment: Mapped[bool] = mapped_column(Boolean, default=False)
    # The escalation level is derived from these (``escalation_level`` below), not stored a
    # second time (migration 0005).
    branch_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    region_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    notes: Mapped[str | None] = mapped_column(Text)
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)

    @hybrid_property
    def escalation_level(self) -> int:
        """0 none, 1 branch manager, 2 region manager: derived from the escalation timestamps."""
        if self.region_escalated_at is not None:
            return 2
        return 1 if self.branch_escalated_at is not None else 0

    @escalation_level.inplace.expression
    @classmethod
    def _escalation_level_expression(cls) -> ColumnElement[int]:
        return case(
            (cls.region_escalated_at.is_not(None), 2),
            (cls.branch_escalated_at.is_not(None), 1),
            else_=0,
        )

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyCampaign(Base):
    """A survey wave, e.g. ``nps:2026Q4:A`` or ``csat:post-complaint``."""

    __tablename__ = "survey_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[SurveyKind] = mapped_column(str_enum(SurveyKind, "kind"))
    trigger: Mapped[SurveyTrigger] = mapped_column(str_enum(SurveyTrigger, "trigger"))
    period: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyInvitation(Base):
    __tablename__ = "survey_invitations"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id"),
        Index("ix_survey_invitations_customer_created", "customer_id", "created_at"),
        Index("ix_survey_invitations_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    # Only a hash of the link token is stored: a database leak does not leak working links.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(
        str_enum(InvitationStatus, "status"), default=InvitationStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyResponse(Base):
    """A customer's answer to a survey invitation, one per invitation: the score (NPS 0-10,
    CSAT 1-5, by the campaign's kind), two optional 1-5 ratings, the suggestion (``comment``).
    Written by the answer page (``web``) or ``crm import responses`` (phone, paper, import);
    ``tasks/surveys/answers``. ``responded_at`` is the customer's moment, ``recorded_at`` when
    the row was written (an import's answers are older than the import)."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        CheckConstraint("score >= 0 AND score <= 10", name="score_range"),
        CheckConstraint("product_rating >= 1 AND product_rating <= 5", name="product_rating_range"),
        CheckConstraint("service_rating >= 1 AND service_rating <= 5", name="service_rating_range"),
        Index("ix_survey_responses_recorded_at", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("survey_invitations.id"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    product_rating: Mapped[int | None] = mapped_column(Integer)
    service_rating: Mapped[int | None] = mapped_column(Integer)
    # The suggestion box (您对我们产品的体验和改进建议), as the customer typed it, normalised.
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[ResponseSource] = mapped_column(
        str_enum(ResponseSource, "source", length=20), default=ResponseSource.WEB
    )
    # Who typed in a phone or paper answer (None for the page and anonymous imports).
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    responded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CareFeedback(Base):
    """A customer's answer to a care email ("was the issue you raised last time solved?"),
    given on the page its link opens. One answer per email: the link names the outbox row.

    The answer itself is the contact it recorded in the customer file - solved is ``completed``,
    not solved ``issue_raised`` with the customer's comment in its notes - which also holds its
    customer and time; this row only ties it to the email and to the call it led to."""

    __tablename__ = "care_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("email_outbox.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact_history.id"), unique=True)
    # Not solved: the revisit that asks the account manager to call - a new one, or the
    # customer's open one made a call (None when nobody could be assigned).
    follow_up_revisit_id: Mapped[int | None] = mapped_column(ForeignKey("revisits.id"))
