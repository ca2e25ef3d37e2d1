"""revisit capacity

The working day a revisit is planned for (``planned_for``): a backlog is spread over the
following working days within each account manager's daily capacity, and escalation counts
from that day. NULL means "planned on its due date" (revisits written before this revision,
and the customer-requested follow-ups that are never deferred). The index serves the planner's
per-manager load query (an assignee's revisits planned from a day on).

Revision ID: 0012_revisit_capacity
Revises: 0011_complaint_next_check
Create Date: 2026-12-07 11:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_revisit_capacity"
down_revision: str | None = "0011_complaint_next_check"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("revisits", sa.Column("planned_for", sa.Date(), nullable=True))
    op.create_index("ix_revisits_assignee_planned", "revisits", ["assignee_id", "planned_for"])


def downgrade() -> None:
    op.drop_index("ix_revisits_assignee_planned", table_name="revisits")
    # SQLite >= 3.35 drops a column in place (no table rebuild) once no index holds it.
    op.drop_column("revisits", "planned_for")
