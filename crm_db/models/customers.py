"""Customers, their transactions, their contact history (客户档案) and classification changes."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import (
    AbcClass,
    CardType,
    ContactChannel,
    ContactOutcome,
    TransactionKind,
    ValueQuadrant,
)
from crm_db.models.base import Base, str_enum
from crm_db.types import UTCDateTime, utcnow


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint("abc_pinned = false OR abc_pinned_reason IS NOT NULL", name="pin_reason"),
        Index("ix_customers_branch_class", "branch_id", "abc_class"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    email_undeliverable: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(10), default="zh-CN")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    card_type: Mapped[CardType] = mapped_column(str_enum(CardType, "card_type"))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))
    account_manager_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    marketing_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    survey_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    abc_class: Mapped[AbcClass | None] = mapped_column(str_enum(AbcClass, "abc_class"))
    abc_pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    abc_pinned_reason: Mapped[str | None] = mapped_column(String(500))
    classified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    value_quadrant: Mapped[ValueQuadrant | None] = mapped_column(
        str_enum(ValueQuadrant, "value_quadrant")
    )
    first_card_on: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Transaction(Base):
    """A card recharge or fuel purchase. Money in fen and volume in millilitres, as integers:
    exact on both SQLite and PostgreSQL, and cheap to SUM over millions of rows."""

    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_non_negative"),
        CheckConstraint("volume_ml >= 0", name="volume_non_negative"),
        Index("ix_transactions_customer_day", "customer_id", "occurred_on"),
        Index("ix_transactions_day_branch", "occurred_on", "branch_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))
    kind: Mapped[TransactionKind] = mapped_column(str_enum(TransactionKind, "kind"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    volume_ml: Mapped[int] = mapped_column(BigInteger, default=0)
    occurred_on: Mapped[date] = mapped_column(Date)


class ContactHistory(Base):
    """Every visit, call, email and survey with its outcome: the customer file (客户档案)."""

    __tablename__ = "contact_history"
    __table_args__ = (
        Index("ix_contact_history_customer_outcome_at", "customer_id", "outcome", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    channel: Mapped[ContactChannel] = mapped_column(str_enum(ContactChannel, "channel"))
    outcome: Mapped[ContactOutcome] = mapped_column(str_enum(ContactOutcome, "outcome"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Indexed: without it every revisit delete scans the whole contact history for references.
    revisit_id: Mapped[int | None] = mapped_column(ForeignKey("revisits.id"), index=True)
    notes: Mapped[str | None] = mapped_column(Text)


class CustomerClassChange(Base):
    """Audit of every A/B/C or value-quadrant change, with the reason."""

    __tablename__ = "customer_class_changes"
    # One change record per customer and as-of date: re-running a classification adds nothing.
    __table_args__ = (UniqueConstraint("customer_id", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    as_of: Mapped[date] = mapped_column(Date)
    old_class: Mapped[str | None] = mapped_column(String(1))
    new_class: Mapped[str | None] = mapped_column(String(1))
    old_quadrant: Mapped[str | None] = mapped_column(String(10))
    new_quadrant: Mapped[str | None] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(500))
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentChange(Base):
    """Audit of every change to a customer's consent to mail: what changed, when, and where it
    came from (``source``: ``unsubscribe_link``, ``import``, ...). Written in the same
    transaction as the change itself."""

    __tablename__ = "consent_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    field: Mapped[str] = mapped_column(String(40))  # unsubscribed, marketing_opt_out, ...
    old_value: Mapped[str | None] = mapped_column(String(40))
    new_value: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(40))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerOwnerChange(Base):
    """Audit of every change of a customer's account manager: from whom, to whom, when, where
    it came from (``source``: ``leaver`` - the revisits flow handing a leaver's customers to the
    branch manager -, ``cli``, ``import``) and why. Written in the same transaction as the
    change itself (``tasks.common.owners``)."""

    __tablename__ = "customer_owner_changes"
    __table_args__ = (Index("ix_customer_owner_changes_to_changed", "to_staff_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    from_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    to_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(500))
    # The ledger row (flow_runs.id) of the run that wrote this, if a run did (migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
