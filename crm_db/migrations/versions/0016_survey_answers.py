"""survey answers

What the answer page and ``crm import responses`` record beyond the score: two optional 1-5
ratings (``product_rating``, ``service_rating``); the suggestion stays in ``comment`` (one text
box on the page, one column); ``source`` becomes a closed vocabulary (web, phone, paper,
import); ``recorded_by_id`` names the staff member who typed in a phone or paper answer;
``recorded_at`` is when the row was written, which an imported answer's ``responded_at`` (the
customer's moment) is not. Existing rows get ``recorded_at`` = ``responded_at``; a source
outside the vocabulary becomes ``import`` (the only writer before this revision was the demo).

Revision ID: 0016_survey_answers
Revises: 0015_targets
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crm_db.types

revision: str = "0016_survey_answers"
down_revision: str | None = "0015_targets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = ("web", "phone", "paper", "import")


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE survey_responses SET source = 'import' "
            "WHERE source IS NULL OR source NOT IN ('web', 'phone', 'paper', 'import')"
        )
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product_rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("service_rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recorded_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("recorded_at", crm_db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.execute(sa.text("UPDATE survey_responses SET recorded_at = responded_at"))
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.alter_column(
            "recorded_at", existing_type=crm_db.types.UTCDateTime(timezone=True), nullable=False
        )
        batch_op.create_check_constraint(
            op.f("ck_survey_responses_product_rating_range"),
            "product_rating >= 1 AND product_rating <= 5",
        )
        batch_op.create_check_constraint(
            op.f("ck_survey_responses_service_rating_range"),
            "service_rating >= 1 AND service_rating <= 5",
        )
        batch_op.create_check_constraint(
            op.f("ck_survey_responses_source"), "source IN ('web', 'phone', 'paper', 'import')"
        )
        batch_op.create_foreign_key(
            op.f("fk_survey_responses_recorded_by_id_staff"),
            "staff",
            ["recorded_by_id"],
            ["id"],
        )
        batch_op.create_index("ix_survey_responses_recorded_at", ["recorded_at"])


def downgrade() -> None:
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_survey_responses_recorded_at")
        batch_op.drop_constraint(
            op.f("fk_survey_responses_recorded_by_id_staff"), type_="foreignkey"
        )
        batch_op.drop_constraint(op.f("ck_survey_responses_source"), type_="check")
        batch_op.drop_constraint(op.f("ck_survey_responses_service_rating_range"), type_="check")
        batch_op.drop_constraint(op.f("ck_survey_responses_product_rating_range"), type_="check")
        batch_op.drop_column("recorded_at")
        batch_op.drop_column("recorded_by_id")
        batch_op.drop_column("service_rating")
        batch_op.drop_column("product_rating")
