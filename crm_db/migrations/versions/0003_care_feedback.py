"""care feedback

``care_feedback`` ties a customer's answer to a care email ("was the issue you raised last time
solved?") to the email (``outbox_id``, unique: one answer per email), to the contact that
records the answer in the customer file, and - when not solved - to the revisit that asks the
account manager to call.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 15:03:06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "care_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("follow_up_revisit_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact_history.id"],
            name=op.f("fk_care_feedback_contact_id_contact_history"),
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
        sa.UniqueConstraint("contact_id", name=op.f("uq_care_feedback_contact_id")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_care_feedback_outbox_id")),
    )


def downgrade() -> None:
    op.drop_table("care_feedback")
