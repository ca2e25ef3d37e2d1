"""targets: versions, all levels and metrics, superseding snapshots

Targets become versioned: ``target_versions`` (who, when, source) and every target row tagged
with the version that set it (rows are never updated; the target as of version V is the row
with the greatest version <= V). The scope gains ``company``; the metrics gain recharge,
first-recharge of new cards and the volume of customers developed this year. Existing targets
move into version 1 (source ``migration``).

Reconciliation snapshots become one per run: a re-run writes the next ``revision`` superseding
the one before, with the target version, period bounds and parameters it used; rows gain the
pro-rated target, pace, MoM/YoY, the region's branch-target sum and a list of flags. Nothing
wrote the two reconciliation tables before this revision, so they are rebuilt empty.

Revision ID: 0015_targets
Revises: 0014_care_alerts
Create Date: 2026-12-07 15:40:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0015_targets"
down_revision: str | None = "0014_care_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SCOPES = ("region", "branch", "staff")
NEW_SCOPES = ("company", *OLD_SCOPES)
OLD_METRICS = (
    "new_customers_personal",
    "new_customers_company",
    "new_customers_fleet",
    "volume_ml",
    "revenue_fen",
)
NEW_METRICS = (*OLD_METRICS, "recharge_fen", "first_recharge_fen", "new_customer_volume_ml")


def _enum(values: Sequence[str], name: str, length: int | None = None) -> sa.Enum:
    return sa.Enum(
        *values,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length or max(len(v) for v in values),
    )


def _old_targets_table() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("scope", _enum(OLD_SCOPES, "scope"), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("metric", _enum(OLD_METRICS, "metric"), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint(
            "period",
            "scope",
            "scope_id",
            "metric",
            name=op.f("uq_targets_period_scope_scope_id_metric"),
        ),
    )


def _new_targets_table() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("scope", _enum(NEW_SCOPES, "scope", 20), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("metric", _enum(NEW_METRICS, "metric", 40), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["target_versions.id"],
            name=op.f("fk_targets_version_id_target_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint(
            "period",
            "scope",
            "scope_id",
            "metric",
            "version_id",
            name=op.f("uq_targets_period_scope_scope_id_metric_version_id"),
        ),
    )
    op.create_index(op.f("ix_targets_version_id"), "targets", ["version_id"])


def _old_reconciliation_tables() -> None:
    op.create_table(
        "reconciliation_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_snapshots")),
        sa.UniqueConstraint(
            "kind", "period", "as_of", name=op.f("uq_reconciliation_snapshots_kind_period_as_of")
        ),
    )
    op.create_table(
        "reconciliation_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("scope", _enum(OLD_SCOPES, "scope"), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("metric", _enum(OLD_METRICS, "metric"), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=True),
        sa.Column("actual", sa.BigInteger(), nullable=False),
        sa.Column("completion", sa.Float(), nullable=True),
        sa.Column("previous_month", sa.BigInteger(), nullable=True),
        sa.Column("previous_year", sa.BigInteger(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("flag", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["reconciliation_snapshots.id"],
            name=op.f("fk_reconciliation_rows_snapshot_id_reconciliation_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_rows")),
        sa.UniqueConstraint(
            "snapshot_id",
            "scope",
            "scope_id",
            "metric",
            name=op.f("uq_reconciliation_rows_snapshot_id_scope_scope_id_metric"),
        ),
    )


def _new_reconciliation_tables() -> None:
    op.create_table(
        "reconciliation_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("period_rule", sa.String(length=20), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("target_month", sa.String(length=7), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("target_version_id", sa.Integer(), nullable=True),
        sa.Column("parameters", crm_db.types.JsonDict, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", crm_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["reconciliation_snapshots.id"],
            name=op.f("fk_reconciliation_snapshots_supersedes_id_reconciliation_snapshots"),
        ),
        sa.ForeignKeyConstraint(
            ["target_version_id"],
            ["target_versions.id"],
            name=op.f("fk_reconciliation_snapshots_target_version_id_target_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_snapshots")),
        sa.UniqueConstraint(
            "kind",
            "period_rule",
            "period",
            "revision",
            name=op.f("uq_reconciliation_snapshots_kind_period_rule_period_revision"),
        ),
        sa.UniqueConstraint(
            "supersedes_id", name=op.f("uq_reconciliation_snapshots_supersedes_id")
        ),
    )
    op.create_table(
        "reconciliation_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("scope", _enum(NEW_SCOPES, "scope", 20), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("metric", _enum(NEW_METRICS, "metric", 40), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=True),
        sa.Column("expected", sa.BigInteger(), nullable=True),
        sa.Column("actual", sa.BigInteger(), nullable=False),
        sa.Column("completion", sa.Float(), nullable=True),
        sa.Column("pace", sa.Float(), nullable=True),
        sa.Column("previous_month", sa.BigInteger(), nullable=True),
        sa.Column("previous_year", sa.BigInteger(), nullable=True),
        sa.Column("mom", sa.Float(), nullable=True),
        sa.Column("yoy", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("branch_target_sum", sa.BigInteger(), nullable=True),
        sa.Column("flags", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["reconciliation_snapshots.id"],
            name=op.f("fk_reconciliation_rows_snapshot_id_reconciliation_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_rows")),
        sa.UniqueConstraint(
            "snapshot_id",
            "scope",
            "scope_id",
            "metric",
            name=op.f("uq_reconciliation_rows_snapshot_id_scope_scope_id_metric"),
        ),
    )
    op.create_index(
        "ix_reconciliation_rows_snapshot_parent",
        "reconciliation_rows",
        ["snapshot_id", "parent_id"],
    )


_COLUMNS = ("period", "scope", "scope_id", "metric", "value")


def upgrade() -> None:
    bind = op.get_bind()
    old = bind.execute(
        sa.text("SELECT id, period, scope, scope_id, metric, value FROM targets ORDER BY id")
    ).all()
    op.drop_table("reconciliation_rows")
    op.drop_table("reconciliation_snapshots")
    op.drop_table("targets")
    versions = op.create_table(
        "target_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_name", sa.String(length=300), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_versions")),
    )
    _new_targets_table()
    _new_reconciliation_tables()
    if old:
        assert versions is not None
        op.bulk_insert(
            versions,
            [
                {
                    "id": 1,
                    "created_at": datetime.now(UTC),
                    "created_by": "migration 0015_targets",
                    "source": "migration",
                    "source_name": None,
                    "note": "targets set before versions existed",
                }
            ],
        )
        rows = [
            {"id": r[0], "version_id": 1, **dict(zip(_COLUMNS, r[1:], strict=True))} for r in old
        ]
        bind.execute(
            sa.text(
                "INSERT INTO targets (id, version_id, period, scope, scope_id, metric, value) "
                "VALUES (:id, :version_id, :period, :scope, :scope_id, :metric, :value)"
            ),
            rows,
        )
        if bind.dialect.name == "postgresql":
            bind.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('target_versions', 'id'), 1)")
            )
            bind.execute(
                sa.text(
                    "SELECT setval(pg_get_serial_sequence('targets', 'id'), "
                    "(SELECT max(id) FROM targets))"
                )
            )


def downgrade() -> None:
    """Keeps, per key, the latest version's value of the scopes and metrics 0012 knew."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT period, scope, scope_id, metric, value FROM targets ORDER BY version_id, id"
        )
    ).all()
    latest: dict[tuple[object, ...], int] = {}
    for period, scope, scope_id, metric, value in rows:
        if scope in OLD_SCOPES and metric in OLD_METRICS:
            latest[(period, scope, scope_id, metric)] = value
    op.drop_table("reconciliation_rows")
    op.drop_table("reconciliation_snapshots")
    op.drop_table("targets")
    op.drop_table("target_versions")
    _old_targets_table()
    _old_reconciliation_tables()
    if latest:
        bind.execute(
            sa.text(
                "INSERT INTO targets (period, scope, scope_id, metric, value) "
                "VALUES (:period, :scope, :scope_id, :metric, :value)"
            ),
            [dict(zip(_COLUMNS, (*key, value), strict=True)) for key, value in latest.items()],
        )
