"""consent changes

An audit row for every change to a customer's consent to mail (unsubscribe link, import, ...):
what changed, when and from where.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crm_db.types import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("old_value", sa.String(40)),
        sa.Column("new_value", sa.String(40)),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("changed_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_consent_changes_customer_id", "consent_changes", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_changes_customer_id", table_name="consent_changes")
    op.drop_table("consent_changes")
