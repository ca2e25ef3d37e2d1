"""run_id columns without foreign keys

The ``run_id`` of revisits, outbox rows, class changes, complaint escalations and reconciliation
snapshots names the ledger row (``flow_runs``) of the run that wrote them: provenance, written
after the ledger row and never the reason a row exists. As a foreign key it cost PostgreSQL a
row-locking lookup of that one ledger row for every row inserted - ~8 us a row, a tenth of a
million-customer revisits run. The columns and their values stay; only the constraints go.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "revisits",
    "email_outbox",
    "customer_class_changes",
    "complaint_escalations",
    "reconciliation_snapshots",
)


def upgrade() -> None:
    for table in TABLES:
        # Batch mode: SQLite rebuilds the table (it cannot drop a constraint in place).
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_run_id_flow_runs", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(
                f"fk_{table}_run_id_flow_runs", "flow_runs", ["run_id"], ["id"]
            )
