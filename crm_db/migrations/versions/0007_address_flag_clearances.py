"""address flag clearances

An audit table for undeliverable flags an operator clears with ``crm outbox retry --failed
--clear-flags`` (flags a relay's refusal of the client set before such refusals were
configuration errors).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crm_db.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "address_flag_clearances",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("cleared_at", UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("address_flag_clearances")
