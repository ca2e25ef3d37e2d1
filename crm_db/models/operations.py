"""Operational tables: the email outbox, the flow-run ledger and policy settings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import OutboxStatus, RunStatus
from crm_db.models.base import Base, str_enum
from crm_db.types import JsonDict, UTCDateTime, utcnow


class FlowRun(Base):
    """The CRM's own ledger of flow runs: what ran, for which date, and what it did (counts)."""

    __tablename__ = "flow_runs"
    __table_args__ = (Index("ix_flow_runs_flow_as_of", "flow_name", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_name: Mapped[str] = mapped_column(String(80))
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(36))
    as_of: Mapped[date] = mapped_column(Date)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    status: Mapped[RunStatus] = mapped_column(
        str_enum(RunStatus, "status"), default=RunStatus.RUNNING
    )
    counts: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxMessage(Base):
    """Transactional outbox: a flow adds rows in its own transaction, delivery drains them.

    ``idempotency_key`` (``kind:period:entity``) is unique, so adding an existing message is a
    no-op; ``message_id`` is fixed at creation and reused on every retry.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_email_outbox_kind_status", "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(60))
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    recipient_email: Mapped[str] = mapped_column(String(320))
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    context: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus, "status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_response: Mapped[str | None] = mapped_column(String(500))
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxAttachment(Base):
    """A file carried by an outbox message: an XLSX report, or (``content_id`` set) an inline
    image the HTML shows with ``cid:``. Inserted with its message, in the same transaction;
    delivery rebuilds the message from these bytes on every attempt, in ``position`` order.

    A table rather than a column on ``email_outbox``: most messages carry none, and claiming
    reads the outbox row by row at delivery rate, so the bytes stay out of that path."""

    __tablename__ = "outbox_attachments"
    __table_args__ = (UniqueConstraint("outbox_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("email_outbox.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(255))
    content_id: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AddressFlagClearance(Base):
    """Audit of an undeliverable flag cleared by an operator (``crm outbox retry --failed
    --clear-flags``): which person, because of which failed outbox row, when."""

    __tablename__ = "address_flag_clearances"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(Integer)  # provenance, not a foreign key
    customer_id: Mapped[int | None] = mapped_column(Integer)
    staff_id: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))  # the refusal that had set the flag (masked)
    cleared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicySetting(Base):
    """Named policy values (thresholds, caps, windows) editable without a deploy.

    Rules read them through ``crm_db.policies``; code holds only the documented defaults.
    """

    __tablename__ = "policy_settings"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[Any] = mapped_column(JsonDict)
    description: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RelayQuota(Base):
    """Messages granted for sending through one SMTP relay in its current window of each span
    (``span_s`` 1: this second, 3600: this clock hour), shared by every delivering process:
    a sender locks the row, takes slots within ``CRM_SMTP_MAX_PER_*`` and commits before it
    sends (``tasks.mail.quota``). One row per relay and span, reset when a new window starts."""

    __tablename__ = "relay_quota"

    relay: Mapped[str] = mapped_column(String(300), primary_key=True)  # host:port
    span_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger)  # epoch seconds, UTC
    used: Mapped[int] = mapped_column(Integer)
