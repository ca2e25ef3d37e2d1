"""complaint next check

``complaints.next_check_at``: the instant the complaint check must look at a complaint next
(the next escalation tier not yet reached falls due, or "now" after a change), maintained by the
lifecycle writes and by the check itself, indexed so a check reads only the complaints due.
``complaints.verify_reminded_at``: when the branch manager was reminded that the resolved
complaint is not verified (复查), once per complaint; a partial index on ``resolved_at`` of the
resolved complaints not yet reminded is what the reminder sweep reads.

Data: every complaint whose clocks may run (new, acknowledged, in progress, waiting on the
customer) gets ``next_check_at`` = its ``received_at`` ("check me now"): the first check
recomputes it from the tiers already recorded. The downgrade drops both columns and indexes.

Revision ID: 0011_complaint_next_check
Revises: 0010_owner_changes
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crm_db.types import UTCDateTime

revision: str = "0011_complaint_next_check"
down_revision: str | None = "0010_owner_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("next_check_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verify_reminded_at", UTCDateTime(timezone=True), nullable=True))
    op.create_index("ix_complaints_next_check_at", "complaints", ["next_check_at"])
    pending = sa.text("status = 'resolved' AND verify_reminded_at IS NULL")
    op.create_index(
        "ix_complaints_verify_pending",
        "complaints",
        ["resolved_at"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.execute(
        "UPDATE complaints SET next_check_at = received_at "
        "WHERE status IN ('new', 'acknowledged', 'in_progress', 'waiting_on_customer')"
    )


def downgrade() -> None:
    op.drop_index("ix_complaints_verify_pending", table_name="complaints")
    op.drop_index("ix_complaints_next_check_at", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("verify_reminded_at")
        batch.drop_column("next_check_at")
