"""Revisit policies and revisits (定期回访), satisfaction surveys (满意度调查)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    Float,
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
    CareAlertKind,
    ContactChannel,
    InvitationStatus,
    ResponseSource,
    RevisitStatus,
    SurveyKind,
    SurveyPeriod,
    SurveyTrigger,
)
from crm_db.models.base import Base, str_enum
from crm_db.types import JsonDict, UTCDateTime, utcnow


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
    # Why the revisit is open beyond its cadence: NULL for a cadence revisit, ``care_alert`` for
    # the urgent follow-up of a care alert (a detractor, a low score, a churn warning; 0013).
    reason: Mapped[str | None] = mapped_column(String(20))
    # What was done, in words for the customer (never the internal ``notes``): the "here is
    # what we did" email quotes it when an alert's revisit is completed (0013).
    customer_summary: Mapped[str | None] = mapped_column(Text)
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


class SurveyPolicy(Base):
    """The periodic NPS survey of a class (defaults: A quarterly, B half-yearly, C yearly);
    ``enabled`` false switches the class off (migration 0013)."""

    __tablename__ = "survey_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    abc_class: Mapped[AbcClass] = mapped_column(str_enum(AbcClass, "abc_class"), unique=True)
    period: Mapped[SurveyPeriod] = mapped_column(str_enum(SurveyPeriod, "period"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class CareAlert(Base):
    """A care alert (满意度闭环, 流失预警): one per survey response that scored low, one per churn
    warning. ``key`` makes re-runs idempotent (``survey:response:<id>``,
    ``churn:customer:<id>:<as_of>``); ``revisit_id`` is the urgent revisit it opened or made
    urgent; ``result_queued_at`` when the customer was told what was done."""

    __tablename__ = "care_alerts"
    __table_args__ = (
        # The churn dedup looks up a customer's last alert of a kind.
        Index("ix_care_alerts_customer_kind_as_of", "customer_id", "kind", "as_of"),
        # The alerts whose email is still to be queued (small and partial).
        Index(
            "ix_care_alerts_unnotified",
            "id",
            sqlite_where=text("notified_at IS NULL"),
            postgresql_where=text("notified_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[CareAlertKind] = mapped_column(str_enum(CareAlertKind, "kind", length=20))
    source: Mapped[str] = mapped_column(String(60))  # response:<id>, or the churn window's end
    as_of: Mapped[date] = mapped_column(Date)
    score: Mapped[int | None] = mapped_column(Integer)
    revisit_id: Mapped[int | None] = mapped_column(ForeignKey("revisits.id"), index=True)
    # The follow-up deadline (N working days after ``as_of``): the loop's "followed up within 2
    # working days" counts the revisits completed by then. NULL when no revisit was opened.
    follow_up_due: Mapped[date | None] = mapped_column(Date)
    recipients: Mapped[int] = mapped_column(Integer, default=0)  # staff alerted
    # What the email shows beside the customer's context: the customer's comment, the churn
    # windows' spend (JSON: ``comment``, ``recent_fen``, ``previous_fen``).
    details: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # When the alert email was queued. NULL: still to be told - the churn check writes a
    # range's alerts at a time and queues one email per recipient for all of them at the end;
    # a run that died in between leaves them for the next (nothing lost).
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    run_id: Mapped[int | None] = mapped_column(Integer)  # provenance, not a foreign key (0002)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyCampaign(Base):
    """A survey wave, e.g. ``nps:2026Q4:A`` (periodic, one class) or ``csat:2026-12``
    (post-complaint, the month it was sent)."""

    __tablename__ = "survey_campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[SurveyKind] = mapped_column(str_enum(SurveyKind, "kind"))
    trigger: Mapped[SurveyTrigger] = mapped_column(str_enum(SurveyTrigger, "trigger"))
    period: Mapped[str] = mapped_column(String(20))
    # The class of a periodic wave; NULL for post-complaint campaigns (0013).
    abc_class: Mapped[AbcClass | None] = mapped_column(str_enum(AbcClass, "abc_class"))
    # A periodic wave is spread over the working days from this day to the period's end: the
    # period's first day, or the day the flow first ran in it (no backlog sent in one day).
    starts_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyInvitation(Base):
    __tablename__ = "survey_invitations"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id"),
        Index("ix_survey_invitations_customer_created", "customer_id", "created_at"),
        Index("ix_survey_invitations_status_expires", "status", "expires_at"),
        # At most one post-complaint survey per complaint (0013).
        Index(
            "uq_survey_invitations_complaint",
            "complaint_id",
            unique=True,
            sqlite_where=text("complaint_id IS NOT NULL"),
            postgresql_where=text("complaint_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("survey_campaigns.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    kind: Mapped[SurveyKind] = mapped_column(str_enum(SurveyKind, "kind"))
    # The customer's class when invited (NULL: unclassified).
    abc_class: Mapped[AbcClass | None] = mapped_column(str_enum(AbcClass, "abc_class"))
    # The working day the wave planned for this customer (spread over the period), or the
    # post-complaint survey's due day; the invitation is written on it or, held back (contact
    # cap, fatigue), on a later run.
    due_on: Mapped[date | None] = mapped_column(Date)
    # Unused since 0013 (NULL for invitations the flow writes): answer links are signed tokens
    # naming the invitation (tasks.mail.links.survey_answer_token), verified, never looked up,
    # so no working link can be rebuilt from the database.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[InvitationStatus] = mapped_column(
        str_enum(InvitationStatus, "status"), default=InvitationStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The ledger row (flow_runs.id) of the run that wrote it: provenance, not a foreign key.
    run_id: Mapped[int | None] = mapped_column(Integer)


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


class SurveyScore(Base):
    """A survey score of one group for one period (``tasks/surveys/scores.py``): ``level``
    ``company`` (``scope`` ``""``), ``region``/``branch``/``account_manager`` (their id) or
    ``class`` (A/B/C, ``-`` unclassified); ``kind`` ``nps`` or ``csat``. The counts behind it are
    kept; ``score`` and ``response_rate`` are NULL when the group had no answers (invitations),
    never 0. A run replaces the rows of the periods it computes."""

    __tablename__ = "survey_scores"
    __table_args__ = (
        UniqueConstraint("period", "level", "scope", "kind", name="uq_survey_scores_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # 2026Q4
    level: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    kind: Mapped[SurveyKind] = mapped_column(str_enum(SurveyKind, "kind"))
    sent: Mapped[int] = mapped_column(Integer)
    responses: Mapped[int] = mapped_column(Integer)
    promoters: Mapped[int] = mapped_column(Integer)
    passives: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)
    satisfied: Mapped[int] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    response_rate: Mapped[float | None] = mapped_column(Float)
    run_id: Mapped[int | None] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyLoopScore(Base):
    """The detractor loop of one period and group (``tasks/surveys/loop_scores.py``): of the
    survey alerts raised in the period (by ``care_alerts.as_of``), how many were followed up
    within the deadline, told the result, answered a later survey (``next_*``: their next
    score) and no longer scored low (``next_recovered``). ``level`` ``company`` (``scope``
    ``""``) or ``region`` (its id, ``-`` without a branch). The shares are NULL when there was
    nothing to count, never 0. A surveys run replaces the rows of the periods it computes
    (migration 0020)."""

    __tablename__ = "survey_loop_scores"
    __table_args__ = (
        UniqueConstraint("period", "level", "scope", name="uq_survey_loop_scores_group"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # 2026Q4
    level: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(20))
    alerts: Mapped[int] = mapped_column(Integer)
    followed_up: Mapped[int] = mapped_column(Integer)  # revisit completed by follow_up_due
    told: Mapped[int] = mapped_column(Integer)  # the "here is what we did" email queued
    next_answers: Mapped[int] = mapped_column(Integer)
    next_recovered: Mapped[int] = mapped_column(Integer)
    next_promoters: Mapped[int] = mapped_column(Integer)
    next_passives: Mapped[int] = mapped_column(Integer)
    next_detractors: Mapped[int] = mapped_column(Integer)
    next_csat_answers: Mapped[int] = mapped_column(Integer)
    next_csat_satisfied: Mapped[int] = mapped_column(Integer)
    followed_up_pct: Mapped[float | None] = mapped_column(Float)
    told_pct: Mapped[float | None] = mapped_column(Float)
    next_nps: Mapped[float | None] = mapped_column(Float)
    next_csat: Mapped[float | None] = mapped_column(Float)
    run_id: Mapped[int | None] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
