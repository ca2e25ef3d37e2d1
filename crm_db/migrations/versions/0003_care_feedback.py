"""care feedback

``care_feedback``: a customer's answer to a care email ("was the issue you raised last time
solved?"), one per email (``outbox_id`` is unique), with the contact it recorded and, when the
issue is not solved, the follow-up revisit it opened for the account manager.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 15:03:06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("solved", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answered_at", crm_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("follow_up_revisit_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact_history.id"],
            name=op.f("fk_care_feedback_contact_id_contact_history"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_care_feedback_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["follow_up_revisit_id"],
            ["revisits.id"],
            name=op.f("fk_care_feedback_follow_up_revisit_id_revisits"),
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["email_outbox.id"], name=op.f("fk_care_feedback_outbox_id_email_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_feedback")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_care_feedback_outbox_id")),
    )
    with op.batch_alter_table("care_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_care_feedback_customer_id"), ["customer_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("care_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_feedback_customer_id"))
    op.drop_table("care_feedback")
