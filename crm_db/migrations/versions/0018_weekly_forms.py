"""weekly_forms: the region managers' weekly progress forms (周反馈表), one per region and week

Revision ID: 0018_weekly_forms
Revises: 0017_survey_scores
Create Date: 2026-12-07 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0018_weekly_forms"
down_revision: str | None = "0017_survey_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "weekly_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=10), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("prospects_contacted", sa.Integer(), nullable=False),
        sa.Column("obstacles", sa.Text(), nullable=True),
        sa.Column("next_week_plan", sa.Text(), nullable=True),
        sa.Column("submitted_by_id", sa.Integer(), nullable=False),
        sa.Column("first_submitted_at", crm_db.types.UTCDateTime(), nullable=False),
        sa.Column("submitted_at", crm_db.types.UTCDateTime(), nullable=False),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "prospects_contacted >= 0", name=op.f("ck_weekly_forms_prospects_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_weekly_forms_region_id_regions")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["reconciliation_snapshots.id"],
            name=op.f("fk_weekly_forms_snapshot_id_reconciliation_snapshots"),
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"], ["staff.id"], name=op.f("fk_weekly_forms_submitted_by_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_weekly_forms")),
        sa.UniqueConstraint("week", "region_id", name=op.f("uq_weekly_forms_week_region_id")),
    )


def downgrade() -> None:
    op.drop_table("weekly_forms")
