"""revisit escalation derived

A revisit's escalation level is derived from its escalation timestamps (``branch_escalated_at``,
``region_escalated_at``): the separate ``escalation_level`` column stored the same fact twice and
could disagree with them. Dropped; the downgrade restores it from the timestamps.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite >= 3.35 drops a column in place (no table rebuild): the column is in no index.
    op.drop_column("revisits", "escalation_level")


def downgrade() -> None:
    # A server default so existing rows get a value before the column is NOT NULL; then the
    # level as the timestamps say (region implies branch: 2, branch only: 1, neither: 0).
    op.add_column(
        "revisits",
        sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE revisits SET escalation_level = CASE "
        "WHEN region_escalated_at IS NOT NULL THEN 2 "
        "WHEN branch_escalated_at IS NOT NULL THEN 1 ELSE 0 END"
    )
