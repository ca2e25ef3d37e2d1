"""complaint lifecycle

Complaints become driven by their events (the one source of truth) with the SLA targets copied
onto them at intake: ``escalation_level`` (derived from ``complaint_escalations``) and
``paused_seconds`` go; ``paused_business_minutes``, the customer-facing ``customer_title``,
``source``/``source_ref`` (unique when set), the copied targets, the branch's calendar, the due
times and ``reopened_count`` come. SLA policies get ``assignee_pct`` and
``notify_executive_at_intake``, a unique lookup also for class-less rows and increasing
thresholds. Events get a ``kind``, an assignee, a source, ``recorded_at`` and a unique key;
escalations their event, due instant, lateness and reason. New: ``complaint_feedback_routes``;
``staff.role`` admits ``operations_department``.

Data carried over (best effort, stated rules):
- SLA policies: ``first_response_minutes`` are now clock minutes and ``resolution_minutes``
  business minutes. A row that was on a business calendar had its first response in business
  minutes: one 540-minute working day becomes 24 clock hours (x 1440/540, at most 1440). A row
  that was 24x7 had its resolution in clock minutes: 24 clock hours become one working day
  (x 540/1440). ``calendar_id`` now overrides the branch's calendar, so it is cleared.
- ``paused_business_minutes`` = ``paused_seconds`` / 60 (whole clock minutes: an upper bound of
  the business minutes; ``crm complaint recompute`` replays the events exactly).
- Every complaint gets the targets of its policy (or, without one, of the policy its severity
  looks up), the calendar of its branch's region, ``first_response_due_at`` = received + first
  response minutes and ``resolution_due_at`` = received + (resolution + paused) business
  minutes of that calendar; ``reopened_count`` counts its events back to in_progress from
  resolved or later.
- Events get ``recorded_at`` = ``at``.
The downgrade reverses the unit conversions, restores ``paused_seconds`` from the minutes and
refuses (naming them) staff with the new role.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import crm_db.types
from tasks.rules.business_time import BusinessHours, add_business_minutes
from tasks.rules.calendar import WorkCalendar

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = (
    "account_manager",
    "branch_manager",
    "region_manager",
    "marketing_admin",
    "executive",
    "product_department",
)
NEW_ROLES = (*OLD_ROLES, "operations_department")
WORKDAY = 540
DAY = 1440
_UTC = crm_db.types.UTCDateTime(timezone=True)


def _enum(name: str, values: Sequence[str], length: int | None = None) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=length)


def _fail_on(rows: Sequence[sa.Row[tuple[object, ...]]], what: str) -> None:
    if rows:
        listed = ", ".join(str(tuple(r)) for r in rows[:10])
        raise RuntimeError(f"migration 0008: {what}: {listed}; fix these rows and upgrade again")


def _check_policies() -> None:
    conn = op.get_bind()
    _fail_on(
        conn.execute(
            sa.text(
                "SELECT severity, count(*) FROM sla_policies WHERE abc_class IS NULL "
                "GROUP BY severity HAVING count(*) > 1"
            )
        ).all(),
        "several class-less sla_policies rows for one severity (severity, rows)",
    )
    _fail_on(
        conn.execute(
            sa.text(
                "SELECT code FROM sla_policies WHERE NOT (0 < warn_pct AND warn_pct < 100 "
                "AND 100 <= branch_pct AND branch_pct < region_pct "
                "AND region_pct < executive_pct)"
            )
        ).all(),
        "sla_policies thresholds not increasing (warn < assignee 100 <= branch < region "
        "< executive)",
    )
    _fail_on(
        conn.execute(
            sa.text(
                "SELECT complaint_id, at FROM complaint_events "
                "GROUP BY complaint_id, at HAVING count(*) > 1"
            )
        ).all(),
        "complaint events at the same instant (complaint_id, at)",
    )


def _hours(conn: sa.Connection) -> dict[int, BusinessHours]:
    calendars = sa.table(
        "business_calendars",
        sa.column("id", sa.Integer()),
        sa.column("timezone", sa.String()),
        sa.column("work_start", sa.Time()),
        sa.column("work_end", sa.Time()),
        sa.column("break_start", sa.Time()),
        sa.column("break_end", sa.Time()),
        sa.column("working_weekdays", sa.String()),
        sa.column("code", sa.String()),
    )
    days = sa.table(
        "calendar_days",
        sa.column("calendar_id", sa.Integer()),
        sa.column("day", sa.Date()),
        sa.column("is_working", sa.Boolean()),
    )
    exceptions: dict[int, dict[object, bool]] = {}
    for calendar_id, day, working in conn.execute(
        sa.select(days.c.calendar_id, days.c.day, days.c.is_working)
    ):
        exceptions.setdefault(calendar_id, {})[day] = bool(working)
    return {
        row.id: BusinessHours(
            days=WorkCalendar.from_pattern(row.working_weekdays, exceptions.get(row.id, {})),  # type: ignore[arg-type]
            zone=ZoneInfo(row.timezone),
            work_start=row.work_start,
            work_end=row.work_end,
            break_start=row.break_start,
            break_end=row.break_end,
            code=row.code,
        )
        for row in conn.execute(sa.select(calendars))
    }


def _copy_targets_and_due_times() -> None:
    conn = op.get_bind()
    # The policy of each complaint: its own, else its severity's class-less row.
    conn.execute(
        sa.text(
            "UPDATE complaints SET sla_policy_id = (SELECT p.id FROM sla_policies p "
            "WHERE p.severity = complaints.severity AND p.abc_class IS NULL) "
            "WHERE sla_policy_id IS NULL"
        )
    )
    for column in (
        "first_response_minutes",
        "resolution_minutes",
        "warn_pct",
        "assignee_pct",
        "branch_pct",
        "region_pct",
        "executive_pct",
    ):
        conn.execute(
            sa.text(
                f"UPDATE complaints SET {column} = (SELECT p.{column} FROM sla_policies p "
                "WHERE p.id = complaints.sla_policy_id)"
            )
        )
    conn.execute(
        sa.text(
            "UPDATE complaints SET calendar_id = COALESCE("
            "(SELECT p.calendar_id FROM sla_policies p WHERE p.id = complaints.sla_policy_id), "
            "(SELECT r.calendar_id FROM branches b JOIN regions r ON r.id = b.region_id "
            "WHERE b.id = complaints.branch_id))"
        )
    )
    conn.execute(
        sa.text(
            "UPDATE complaints SET reopened_count = (SELECT count(*) FROM complaint_events e "
            "WHERE e.complaint_id = complaints.id AND e.to_status = 'in_progress' "
            "AND e.from_status IN ('resolved', 'verified', 'closed'))"
        )
    )
    hours = _hours(conn)
    company = next((h for h in hours.values() if h.code == "CN"), None)
    complaints = sa.table(
        "complaints",
        sa.column("id", sa.Integer()),
        sa.column("received_at", _UTC),
        sa.column("first_response_minutes", sa.Integer()),
        sa.column("resolution_minutes", sa.Integer()),
        sa.column("paused_business_minutes", sa.Integer()),
        sa.column("calendar_id", sa.Integer()),
        sa.column("first_response_due_at", _UTC),
        sa.column("resolution_due_at", _UTC),
    )
    rows = conn.execute(
        sa.select(
            complaints.c.id,
            complaints.c.received_at,
            complaints.c.first_response_minutes,
            complaints.c.resolution_minutes,
            complaints.c.paused_business_minutes,
            complaints.c.calendar_id,
        ).where(complaints.c.resolution_minutes.is_not(None))
    ).all()
    for row in rows:
        received: datetime = row.received_at
        calendar = hours.get(row.calendar_id) if row.calendar_id is not None else company
        calendar = calendar or BusinessHours.twenty_four_seven()
        conn.execute(
            complaints.update()
            .where(complaints.c.id == row.id)
            .values(
                first_response_due_at=received + timedelta(minutes=row.first_response_minutes),
                resolution_due_at=add_business_minutes(
                    received, row.resolution_minutes + row.paused_business_minutes, calendar
                ),
            )
        )


def upgrade() -> None:
    _check_policies()
    # Units: see the module docstring.
    op.execute(
        f"UPDATE sla_policies SET first_response_minutes = CASE WHEN "
        f"first_response_minutes * {DAY} / {WORKDAY} > {DAY} THEN {DAY} "
        f"ELSE first_response_minutes * {DAY} / {WORKDAY} END WHERE calendar_id IS NOT NULL"
    )
    op.execute(
        f"UPDATE sla_policies SET resolution_minutes = resolution_minutes * {WORKDAY} / {DAY} "
        "WHERE calendar_id IS NULL"
    )
    op.execute("UPDATE sla_policies SET calendar_id = NULL")
    with op.batch_alter_table("sla_policies") as batch:
        batch.add_column(
            sa.Column("assignee_pct", sa.Integer(), nullable=False, server_default="100")
        )
        batch.add_column(
            sa.Column(
                "notify_executive_at_intake",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
        batch.drop_constraint(op.f("ck_sla_policies_resolution_after"), type_="check")
        batch.create_check_constraint(
            op.f("ck_sla_policies_resolution_positive"), "resolution_minutes > 0"
        )
        batch.create_check_constraint(
            op.f("ck_sla_policies_thresholds_increasing"),
            "0 < warn_pct AND warn_pct < assignee_pct AND assignee_pct <= branch_pct "
            "AND branch_pct < region_pct AND region_pct < executive_pct",
        )
        batch.create_index(
            "uq_sla_policies_severity_classless",
            ["severity"],
            unique=True,
            sqlite_where=sa.text("abc_class IS NULL"),
            postgresql_where=sa.text("abc_class IS NULL"),
        )
    op.execute(
        "UPDATE sla_policies SET notify_executive_at_intake = "
        "(severity = 'critical' OR (severity = 'high' AND abc_class = 'A'))"
    )

    with op.batch_alter_table("staff") as batch:
        batch.alter_column(
            "role",
            existing_type=_enum("role", OLD_ROLES),
            type_=_enum("role", NEW_ROLES, 40),
            existing_nullable=False,
        )

    with op.batch_alter_table("complaints") as batch:
        batch.add_column(
            sa.Column("paused_business_minutes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("customer_title", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column(
                "source",
                _enum("source", ("cli", "import", "care_feedback", "survey", "demo"), 20),
                nullable=False,
                server_default="import",
            )
        )
        batch.add_column(sa.Column("source_ref", sa.String(length=80), nullable=True))
        for name in (
            "first_response_minutes",
            "resolution_minutes",
            "warn_pct",
            "assignee_pct",
            "branch_pct",
            "region_pct",
            "executive_pct",
        ):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("calendar_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("first_response_due_at", _UTC, nullable=True))
        batch.add_column(sa.Column("resolution_due_at", _UTC, nullable=True))
        batch.add_column(
            sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_foreign_key(
            op.f("fk_complaints_calendar_id_business_calendars"),
            "business_calendars",
            ["calendar_id"],
            ["id"],
        )
        batch.create_index(
            "uq_complaints_source_ref",
            ["source", "source_ref"],
            unique=True,
            sqlite_where=sa.text("source_ref IS NOT NULL"),
            postgresql_where=sa.text("source_ref IS NOT NULL"),
        )
    op.execute("UPDATE complaints SET paused_business_minutes = paused_seconds / 60")
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("paused_seconds")
        batch.drop_column("escalation_level")
    _copy_targets_and_due_times()

    with op.batch_alter_table("complaint_events") as batch:
        batch.add_column(
            sa.Column(
                "kind",
                _enum("kind", ("transition", "assign", "escalation", "recompute", "note"), 20),
                nullable=False,
                server_default="transition",
            )
        )
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column(
                "source",
                _enum("source", ("cli", "import", "web", "flow", "demo"), 20),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("recorded_at", _UTC, nullable=True))
        batch.add_column(
            sa.Column("detail_key", sa.String(length=60), nullable=False, server_default="")
        )
        batch.create_foreign_key(
            op.f("fk_complaint_events_assignee_id_staff"), "staff", ["assignee_id"], ["id"]
        )
        batch.create_unique_constraint(
            op.f("uq_complaint_events_complaint_id_kind_at_detail_key"),
            ["complaint_id", "kind", "at", "detail_key"],
        )
    op.execute("UPDATE complaint_events SET recorded_at = at")
    with op.batch_alter_table("complaint_events") as batch:
        batch.alter_column("recorded_at", existing_type=_UTC, nullable=False)

    with op.batch_alter_table("complaint_escalations") as batch:
        batch.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("threshold_at", _UTC, nullable=True))
        batch.add_column(sa.Column("late_minutes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=200), nullable=True))
        batch.create_foreign_key(
            op.f("fk_complaint_escalations_event_id_complaint_events"),
            "complaint_events",
            ["event_id"],
            ["id"],
        )

    op.create_table(
        "complaint_feedback_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=80), nullable=False),
        sa.Column("department", _enum("department", NEW_ROLES, 40), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_feedback_routes")),
        sa.UniqueConstraint("category", name=op.f("uq_complaint_feedback_routes_category")),
    )


def downgrade() -> None:
    conn = op.get_bind()
    _fail_on(
        conn.execute(
            sa.text("SELECT external_id FROM staff WHERE role = 'operations_department'")
        ).all(),
        "staff with the role operations_department (no such role before 0008)",
    )
    op.drop_table("complaint_feedback_routes")
    with op.batch_alter_table("complaint_escalations") as batch:
        batch.drop_constraint(
            op.f("fk_complaint_escalations_event_id_complaint_events"), type_="foreignkey"
        )
        batch.drop_column("reason")
        batch.drop_column("late_minutes")
        batch.drop_column("threshold_at")
        batch.drop_column("event_id")
    with op.batch_alter_table("complaint_events") as batch:
        batch.drop_constraint(
            op.f("uq_complaint_events_complaint_id_kind_at_detail_key"), type_="unique"
        )
        batch.drop_constraint(op.f("fk_complaint_events_assignee_id_staff"), type_="foreignkey")
        # SQLite's rebuild keeps a reflected CHECK of a dropped column: drop them first.
        batch.drop_constraint(op.f("ck_complaint_events_kind"), type_="check")
        batch.drop_constraint(op.f("ck_complaint_events_source"), type_="check")
        batch.drop_column("detail_key")
        batch.drop_column("recorded_at")
        batch.drop_column("source")
        batch.drop_column("assignee_id")
        batch.drop_column("kind")
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("paused_seconds", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute("UPDATE complaints SET paused_seconds = paused_business_minutes * 60")
    op.execute(
        "UPDATE complaints SET escalation_level = (SELECT count(DISTINCT tier) FROM "
        "complaint_escalations e WHERE e.complaint_id = complaints.id AND e.tier <> 'warning')"
    )
    with op.batch_alter_table("complaints") as batch:
        batch.drop_index(
            "uq_complaints_source_ref",
            sqlite_where=sa.text("source_ref IS NOT NULL"),
            postgresql_where=sa.text("source_ref IS NOT NULL"),
        )
        batch.drop_constraint(
            op.f("fk_complaints_calendar_id_business_calendars"), type_="foreignkey"
        )
        batch.drop_constraint(op.f("ck_complaints_source"), type_="check")
        for name in (
            "reopened_count",
            "resolution_due_at",
            "first_response_due_at",
            "calendar_id",
            "executive_pct",
            "region_pct",
            "branch_pct",
            "assignee_pct",
            "warn_pct",
            "resolution_minutes",
            "first_response_minutes",
            "source_ref",
            "source",
            "customer_title",
            "paused_business_minutes",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("staff") as batch:
        batch.alter_column(
            "role",
            existing_type=_enum("role", NEW_ROLES, 40),
            type_=_enum("role", OLD_ROLES),
            existing_nullable=False,
        )
    with op.batch_alter_table("sla_policies") as batch:
        batch.drop_index(
            "uq_sla_policies_severity_classless",
            sqlite_where=sa.text("abc_class IS NULL"),
            postgresql_where=sa.text("abc_class IS NULL"),
        )
        batch.drop_constraint(op.f("ck_sla_policies_thresholds_increasing"), type_="check")
        batch.drop_constraint(op.f("ck_sla_policies_resolution_positive"), type_="check")
        batch.drop_column("notify_executive_at_intake")
        batch.drop_column("assignee_pct")
    # Back to the old units: business-hours rows (low, normal) on CN, the others 24x7.
    op.execute(
        "UPDATE sla_policies SET calendar_id = (SELECT id FROM business_calendars "
        "WHERE code = 'CN') WHERE severity IN ('low', 'normal')"
    )
    op.execute(
        f"UPDATE sla_policies SET first_response_minutes = first_response_minutes * {WORKDAY} "
        f"/ {DAY} WHERE calendar_id IS NOT NULL"
    )
    op.execute(
        f"UPDATE sla_policies SET resolution_minutes = resolution_minutes * {DAY} / {WORKDAY} "
        "WHERE calendar_id IS NULL"
    )
    op.execute(
        "UPDATE sla_policies SET resolution_minutes = first_response_minutes "
        "WHERE resolution_minutes < first_response_minutes"
    )
    with op.batch_alter_table("sla_policies") as batch:
        batch.create_check_constraint(
            op.f("ck_sla_policies_resolution_after"),
            "resolution_minutes >= first_response_minutes",
        )
