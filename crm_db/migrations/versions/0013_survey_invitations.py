"""survey invitations

What the ``surveys`` flow needs to invite customers:

- ``survey_policies``: the periodic NPS survey per class (A quarterly, B half-yearly, C yearly),
  each class switchable off (``enabled``); seeded by ``crm_db.defaults``.
- ``survey_campaigns.abc_class``: the class of a periodic wave (``nps:2026Q4:A``); NULL for the
  post-complaint campaigns. ``starts_on``: the day a periodic wave started (the period's first
  day, or the first run's day when the flow first ran mid-period): the wave is spread over the
  working days from it to the period's end, so a first run does not send a backlog in one day.
- ``survey_invitations``: ``kind`` (nps / csat, backfilled from the campaign), ``abc_class``
  (the customer's class when invited), ``due_on`` (the working day the wave planned for the
  customer, or the post-complaint survey's due day), ``run_id`` (the run that wrote it), and at
  most one invitation per complaint (partial unique index). ``token_hash`` becomes nullable:
  answer links are signed tokens naming the invitation (``tasks.mail.links``), verified, not
  looked up, so the flow stores none.

Revision ID: 0013_survey_invitations
Revises: 0012_revisit_capacity
Create Date: 2026-12-07 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_survey_invitations"
down_revision: str | None = "0012_revisit_capacity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, values: Sequence[str], length: int | None = None) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=length)


_CLASSES = ("A", "B", "C")


def upgrade() -> None:
    op.create_table(
        "survey_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("abc_class", _enum("abc_class", _CLASSES), nullable=False),
        sa.Column("period", _enum("period", ("quarter", "half_year", "year")), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_policies")),
        sa.UniqueConstraint("abc_class", name=op.f("uq_survey_policies_abc_class")),
    )
    with op.batch_alter_table("survey_campaigns") as batch:
        batch.add_column(sa.Column("abc_class", _enum("abc_class", _CLASSES), nullable=True))
        batch.add_column(sa.Column("starts_on", sa.Date(), nullable=True))
    with op.batch_alter_table("survey_invitations") as batch:
        batch.add_column(sa.Column("kind", _enum("kind", ("nps", "csat")), nullable=True))
        batch.add_column(sa.Column("abc_class", _enum("abc_class", _CLASSES), nullable=True))
        batch.add_column(sa.Column("due_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("run_id", sa.Integer(), nullable=True))
        batch.alter_column("token_hash", existing_type=sa.String(length=64), nullable=True)
    op.execute(
        "UPDATE survey_invitations SET kind = (SELECT c.kind FROM survey_campaigns c "
        "WHERE c.id = survey_invitations.campaign_id)"
    )
    with op.batch_alter_table("survey_invitations") as batch:
        batch.alter_column("kind", existing_type=_enum("kind", ("nps", "csat")), nullable=False)
        batch.create_index(
            "uq_survey_invitations_complaint",
            ["complaint_id"],
            unique=True,
            sqlite_where=sa.text("complaint_id IS NOT NULL"),
            postgresql_where=sa.text("complaint_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_invitations") as batch:
        batch.drop_index("uq_survey_invitations_complaint")
    # Invitations the flow wrote carry no token hash: give them a unique placeholder (their
    # links are signed, so nothing looks them up by it).
    op.execute(
        "UPDATE survey_invitations SET token_hash = 'signed:' || CAST(id AS VARCHAR(20)) "
        "WHERE token_hash IS NULL"
    )
    with op.batch_alter_table("survey_invitations") as batch:
        batch.alter_column("token_hash", existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint(op.f("ck_survey_invitations_kind"), type_="check")
        batch.drop_constraint(op.f("ck_survey_invitations_abc_class"), type_="check")
        batch.drop_column("run_id")
        batch.drop_column("due_on")
        batch.drop_column("abc_class")
        batch.drop_column("kind")
    with op.batch_alter_table("survey_campaigns") as batch:
        batch.drop_constraint(op.f("ck_survey_campaigns_abc_class"), type_="check")
        batch.drop_column("starts_on")
        batch.drop_column("abc_class")
    op.drop_table("survey_policies")
