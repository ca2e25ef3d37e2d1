"""customer owner changes

An audit row for every change of a customer's account manager (a leaver's customers handed to
the branch manager by the revisits flow, ``crm customer reassign``, the customer import): who
from, who to, when, from where and why.

Revision ID: 0010_owner_changes
Revises: 0009
Create Date: 2026-12-07 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crm_db.types import UTCDateTime

revision: str = "0010_owner_changes"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_owner_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("from_staff_id", sa.Integer(), sa.ForeignKey("staff.id")),
        sa.Column("to_staff_id", sa.Integer(), sa.ForeignKey("staff.id")),
        sa.Column("changed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("run_id", sa.Integer()),
    )
    op.create_index(
        "ix_customer_owner_changes_customer_id", "customer_owner_changes", ["customer_id"]
    )
    op.create_index(
        "ix_customer_owner_changes_to_changed",
        "customer_owner_changes",
        ["to_staff_id", "changed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_customer_owner_changes_to_changed", table_name="customer_owner_changes")
    op.drop_index("ix_customer_owner_changes_customer_id", table_name="customer_owner_changes")
    op.drop_table("customer_owner_changes")
