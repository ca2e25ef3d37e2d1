"""care alerts

The shared care-alert machinery (issue #17: the detractor loop and the churn early warning):
``care_alerts`` (one row per alert, unique ``key`` so re-runs add nothing), and on ``revisits``
the ``reason`` an urgent follow-up is open for (``care_alert``; NULL for a cadence revisit) and
``customer_summary``, what was done in words for the customer (the "here is what we did" email
quotes it; the internal ``notes`` never reach a customer). Existing revisits keep NULL in both.
The policy rows (``churn.window_days``, ``churn.dedup_days``,
``care.urgent_revisit_working_days``) are written by the defaults at head, like every policy.

Revision ID: 0014_care_alerts
Revises: 0013_survey_invitations
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crm_db.types import JsonDict, UTCDateTime

revision: str = "0014_care_alerts"
down_revision: str | None = "0013_survey_invitations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = ("detractor", "low_csat", "low_rating", "churn")


def upgrade() -> None:
    op.add_column("revisits", sa.Column("reason", sa.String(20), nullable=True))
    op.add_column("revisits", sa.Column("customer_summary", sa.Text(), nullable=True))
    op.create_table(
        "care_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(120), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(*_KINDS, name="kind", native_enum=False, create_constraint=True, length=20),
            nullable=False,
        ),
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("revisit_id", sa.Integer(), nullable=True),
        sa.Column("follow_up_due", sa.Date(), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("details", JsonDict, nullable=False),
        sa.Column("notified_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("result_queued_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_care_alerts_customer_id_customers"
        ),
        sa.ForeignKeyConstraint(
            ["revisit_id"], ["revisits.id"], name="fk_care_alerts_revisit_id_revisits"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_care_alerts"),
        sa.UniqueConstraint("key", name="uq_care_alerts_key"),
    )
    op.create_index(
        "ix_care_alerts_customer_kind_as_of", "care_alerts", ["customer_id", "kind", "as_of"]
    )
    op.create_index("ix_care_alerts_revisit_id", "care_alerts", ["revisit_id"])
    op.create_index(
        "ix_care_alerts_unnotified",
        "care_alerts",
        ["id"],
        sqlite_where=sa.text("notified_at IS NULL"),
        postgresql_where=sa.text("notified_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_care_alerts_unnotified", table_name="care_alerts")
    op.drop_index("ix_care_alerts_revisit_id", table_name="care_alerts")
    op.drop_index("ix_care_alerts_customer_kind_as_of", table_name="care_alerts")
    op.drop_table("care_alerts")
    op.drop_column("revisits", "customer_summary")
    op.drop_column("revisits", "reason")
