"""survey_loop_scores: the detractor loop measured per period and group

Revision ID: 0020_survey_loop_scores
Revises: 0019_relay_quota
Create Date: 2026-12-07 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0020_survey_loop_scores"
down_revision: str | None = "0019_relay_quota"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "alerts",
    "followed_up",
    "told",
    "next_answers",
    "next_recovered",
    "next_promoters",
    "next_passives",
    "next_detractors",
    "next_csat_answers",
    "next_csat_satisfied",
)
_SHARES = ("followed_up_pct", "told_pct", "next_nps", "next_csat")


def upgrade() -> None:
    op.create_table(
        "survey_loop_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        *(sa.Column(name, sa.Float(), nullable=True) for name in _SHARES),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("computed_at", crm_db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_loop_scores")),
        sa.UniqueConstraint("period", "level", "scope", name="uq_survey_loop_scores_group"),
    )


def downgrade() -> None:
    op.drop_table("survey_loop_scores")
