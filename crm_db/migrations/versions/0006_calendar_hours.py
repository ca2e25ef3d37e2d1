"""calendar hours

Business calendars get an optional break (``break_start``/``break_end``), where their public
holidays come from (``holidays_from``) and the last day those are known (``covered_through``);
calendar days get a ``source`` (``chinese_calendar`` or ``manual``) so that the holiday sync
never overwrites a day a person set.

The ``CN`` calendar is marked as fed by ``chinese_calendar`` and its existing days (written by
the defaults from the official notices) as ``chinese_calendar`` rows: safe even if an operator
edited one, because the sync never flips ``is_working`` - it finds the edited day disagreeing
with the package and makes it ``manual`` (``crm_db.calendar_sync``). Other calendars' days
become ``manual``, the column default.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("business_calendars") as batch:
        batch.add_column(sa.Column("break_start", sa.Time(), nullable=True))
        batch.add_column(sa.Column("break_end", sa.Time(), nullable=True))
        batch.add_column(sa.Column("holidays_from", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("covered_through", sa.Date(), nullable=True))
    with op.batch_alter_table("calendar_days") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=20), nullable=False, server_default="manual")
        )
    op.execute("UPDATE business_calendars SET holidays_from = 'chinese_calendar' WHERE code = 'CN'")
    op.execute(
        "UPDATE calendar_days SET source = 'chinese_calendar' WHERE calendar_id IN "
        "(SELECT id FROM business_calendars WHERE code = 'CN')"
    )


def downgrade() -> None:
    with op.batch_alter_table("calendar_days") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("business_calendars") as batch:
        batch.drop_column("covered_through")
        batch.drop_column("holidays_from")
        batch.drop_column("break_end")
        batch.drop_column("break_start")
