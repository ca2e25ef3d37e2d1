"""survey_scores: NPS, CSAT and response rate per period and group

Revision ID: 0017_survey_scores
Revises: 0016_survey_answers
Create Date: 2026-12-07 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0017_survey_scores"
down_revision: str | None = "0016_survey_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "nps", "csat", name="kind", native_enum=False, create_constraint=True, length=4
            ),
            nullable=False,
        ),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("passives", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("satisfied", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("response_rate", sa.Float(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("computed_at", crm_db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_scores")),
        sa.UniqueConstraint("period", "level", "scope", "kind", name="uq_survey_scores_group"),
    )


def downgrade() -> None:
    op.drop_table("survey_scores")
