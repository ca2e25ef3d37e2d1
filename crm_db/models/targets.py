"""Monthly targets per region / branch / account manager and immutable reconciliation snapshots."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import TargetMetric, TargetScope
from crm_db.models.base import Base, str_enum
from crm_db.types import UTCDateTime, utcnow


class Target(Base):
    """``value`` is in the metric's base unit: fen, millilitres, or a count of customers."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("period", "scope", "scope_id", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    scope: Mapped[TargetScope] = mapped_column(str_enum(TargetScope, "scope"))
    scope_id: Mapped[int] = mapped_column(Integer)  # regions.id / branches.id / staff.id
    metric: Mapped[TargetMetric] = mapped_column(str_enum(TargetMetric, "metric"))
    value: Mapped[int] = mapped_column(BigInteger)


class ReconciliationSnapshot(Base):
    """One immutable snapshot per (kind, period, as-of): a re-run finds it and writes nothing."""

    __tablename__ = "reconciliation_snapshots"
    __table_args__ = (UniqueConstraint("kind", "period", "as_of"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # monthly | weekly
    period: Mapped[str] = mapped_column(String(7))
    as_of: Mapped[date] = mapped_column(Date)
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconciliationRow(Base):
    __tablename__ = "reconciliation_rows"
    __table_args__ = (UniqueConstraint("snapshot_id", "scope", "scope_id", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("reconciliation_snapshots.id", ondelete="CASCADE")
    )
    scope: Mapped[TargetScope] = mapped_column(str_enum(TargetScope, "scope"))
    scope_id: Mapped[int] = mapped_column(Integer)
    metric: Mapped[TargetMetric] = mapped_column(str_enum(TargetMetric, "metric"))
    target: Mapped[int | None] = mapped_column(BigInteger)
    actual: Mapped[int] = mapped_column(BigInteger)
    completion: Mapped[float | None] = mapped_column(Float)
    previous_month: Mapped[int | None] = mapped_column(BigInteger)
    previous_year: Mapped[int | None] = mapped_column(BigInteger)
    rank: Mapped[int | None] = mapped_column(Integer)
    flag: Mapped[str | None] = mapped_column(String(30))
