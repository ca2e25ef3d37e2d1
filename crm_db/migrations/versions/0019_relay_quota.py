"""relay_quota: messages granted per SMTP relay in its current second and hour, all senders

Revision ID: 0019_relay_quota
Revises: 0018_weekly_forms
Create Date: 2026-12-07 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_relay_quota"
down_revision: str | None = "0018_weekly_forms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "relay_quota",
        sa.Column("relay", sa.String(length=300), nullable=False),
        sa.Column("span_s", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("relay", "span_s", name=op.f("pk_relay_quota")),
    )


def downgrade() -> None:
    op.drop_table("relay_quota")
