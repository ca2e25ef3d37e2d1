"""Targets per month and level (company, region, branch, account manager), kept in versions, and
the immutable reconciliation snapshots the ``target_reconciliation`` flow writes.

Versions: every import (or other change) adds one ``target_versions`` row (who, when, where
from) and the target rows it changes, tagged with that version. Rows are never updated or
deleted: the target of a key *as of version V* is its row with the greatest ``version_id`` <= V
(``tasks.targets.store``), so every earlier version can still be read and every report names the
version it used.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_db.enums import TargetMetric, TargetScope
from crm_db.models.base import Base, str_enum
from crm_db.types import JsonDict, UTCDateTime, utcnow


class TargetVersion(Base):
    """One change of the targets: who made it, when, and from what (``source``: ``import``,
    ``demo``, ...; ``source_name``: the file's name, never its path)."""

    __tablename__ = "target_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(40))
    source_name: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(String(500))


class Target(Base):
    """``value`` is in the metric's base unit: fen, millilitres, or a count of customers.
    ``period`` is the month (YYYY-MM) the target is for, whatever period rule reports it."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("period", "scope", "scope_id", "metric", "version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("target_versions.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    scope: Mapped[TargetScope] = mapped_column(str_enum(TargetScope, "scope", 20))
    scope_id: Mapped[int] = mapped_column(Integer)  # regions / branches / staff id; 0: company
    metric: Mapped[TargetMetric] = mapped_column(str_enum(TargetMetric, "metric", 40))
    value: Mapped[int] = mapped_column(BigInteger)


class ReconciliationSnapshot(Base):
    """One immutable snapshot per run. A re-run for the same (kind, period rule, period) writes
    the next ``revision``, which ``supersedes`` the one before; the latest revision is the
    current one. The unique revision makes two concurrent re-runs collide instead of forking."""

    __tablename__ = "reconciliation_snapshots"
    __table_args__ = (UniqueConstraint("kind", "period_rule", "period", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # monthly | weekly
    period_rule: Mapped[str] = mapped_column(String(20))  # calendar | settlement
    period: Mapped[str] = mapped_column(String(10))  # 2026-11, 2026-W49
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    target_month: Mapped[str] = mapped_column(String(7))  # the targets' month (YYYY-MM)
    as_of: Mapped[date] = mapped_column(Date)
    revision: Mapped[int] = mapped_column(Integer)
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("reconciliation_snapshots.id"), unique=True
    )
    # None: there were no targets at all when the run read them.
    target_version_id: Mapped[int | None] = mapped_column(ForeignKey("target_versions.id"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # The ledger row (flow_runs.id) of the run that wrote this: provenance, not a foreign key
    # (see migration 0002).
    run_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReconciliationRow(Base):
    """One level member x metric of a snapshot. Amounts are exact integers in base units;
    ratios are floats (1.0 = 100 %). ``flags`` is a comma-separated sorted list (``behind``,
    ``star``, ``no_target``, ``no_activity``, ``target_mismatch``, ...)."""

    __tablename__ = "reconciliation_rows"
    __table_args__ = (
        UniqueConstraint("snapshot_id", "scope", "scope_id", "metric"),
        Index("ix_reconciliation_rows_snapshot_parent", "snapshot_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("reconciliation_snapshots.id", ondelete="CASCADE")
    )
    scope: Mapped[TargetScope] = mapped_column(str_enum(TargetScope, "scope", 20))
    scope_id: Mapped[int] = mapped_column(Integer)
    # The region of a branch row (and of a region row itself); None for company and staff rows.
    parent_id: Mapped[int | None] = mapped_column(Integer)
    metric: Mapped[TargetMetric] = mapped_column(str_enum(TargetMetric, "metric", 40))
    target: Mapped[int | None] = mapped_column(BigInteger)
    expected: Mapped[int | None] = mapped_column(BigInteger)  # target pro-rated to the as-of
    actual: Mapped[int] = mapped_column(BigInteger)
    completion: Mapped[float | None] = mapped_column(Float)
    pace: Mapped[float | None] = mapped_column(Float)  # actual / expected
    previous_month: Mapped[int | None] = mapped_column(BigInteger)
    previous_year: Mapped[int | None] = mapped_column(BigInteger)
    mom: Mapped[float | None] = mapped_column(Float)  # change against the previous month
    yoy: Mapped[float | None] = mapped_column(Float)  # change against the same month last year
    rank: Mapped[int | None] = mapped_column(Integer)
    branch_target_sum: Mapped[int | None] = mapped_column(BigInteger)  # region rows
    flags: Mapped[str] = mapped_column(String(200), default="")


class WeeklyForm(Base):
    """A region's weekly progress form (周反馈表) for one ISO week: what the figures cannot say,
    filed by the region manager from the signed link of Sunday's email. One row per region and
    week: a re-submission before the week closes updates it (``submitted_by_id`` and
    ``submitted_at`` are the latest post's; ``first_submitted_at`` and ``submissions`` keep
    that there were earlier ones). ``snapshot_id`` is the weekly snapshot whose figures the
    form showed when it was last posted."""

    __tablename__ = "weekly_forms"
    __table_args__ = (
        UniqueConstraint("week", "region_id"),
        CheckConstraint("prospects_contacted >= 0", name="prospects_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[str] = mapped_column(String(10))  # ISO week, 2026-W49
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_snapshots.id"))
    prospects_contacted: Mapped[int] = mapped_column(Integer)
    obstacles: Mapped[str | None] = mapped_column(Text)
    next_week_plan: Mapped[str | None] = mapped_column(Text)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    first_submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submissions: Mapped[int] = mapped_column(Integer, default=1)
