"""outbox attachments

``outbox_attachments`` holds the files an outbox message carries (an XLSX report, inline chart
images referenced by ``cid:``), keyed by the message's ``email_outbox.id`` and ordered by
``position``, so delivery rebuilds the same MIME on every attempt.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["email_outbox.id"],
            name=op.f("fk_outbox_attachments_outbox_id_email_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attachments")),
        sa.UniqueConstraint(
            "outbox_id", "position", name=op.f("uq_outbox_attachments_outbox_id_position")
        ),
    )


def downgrade() -> None:
    op.drop_table("outbox_attachments")
