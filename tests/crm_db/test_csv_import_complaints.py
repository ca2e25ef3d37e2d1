"""``crm import complaints`` on both backends: events at the row's own times (never the
import's), the targets in force copied, receipts and intake alerts queued once, and rows the
recorded history refuses reported as ``FILE:LINE: field: problem`` with nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from crm_db.csv_import import ImportOptions, ImportResult, import_csv
from crm_db.defaults import ensure_default_policies
from crm_db.enums import ComplaintEventKind, ComplaintSource, ComplaintStatus, StaffRole
from crm_db.models import Complaint, ComplaintEvent, Customer, OutboxMessage, Staff
from crm_db.session import session_scope
from tests.crm_db.csv_factories import COMPLAINT_HEADER, Org, complaint_row, make_org, write_csv

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def run_import(engine: Engine, path: Path, now: datetime = NOW) -> tuple[ImportResult, list[str]]:
    errors: list[str] = []
    options = ImportOptions(now=now, default_timezone="Asia/Shanghai", default_locale="zh-CN")
    result = import_csv(
        engine, "complaints", path, options, lambda e: errors.append(e.format(path.name))
    )
    return result, errors


def summary(result: ImportResult) -> tuple[int, int, int]:
    return result.counts.inserted, result.counts.updated, result.counts.unchanged


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def org(engine: Engine) -> Org:
    made = make_org(engine)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=NOW)
        session.execute(update(Customer).values(email=Customer.external_id + "@example.test"))
        session.add(
            Staff(
                external_id="BOSS",
                name="刘总",
                email="boss@example.test",
                role=StaffRole.EXECUTIVE,
            )
        )
    return made


def _events(engine: Engine, external_id: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(ComplaintEvent.to_status, ComplaintEvent.at, ComplaintEvent.source)
                .join(Complaint, Complaint.id == ComplaintEvent.complaint_id)
                .where(
                    Complaint.external_id == external_id,
                    ComplaintEvent.kind == ComplaintEventKind.TRANSITION,
                )
                .order_by(ComplaintEvent.at)
            )
        ]


S = ComplaintStatus
T0 = "2026-03-01T09:30:00+08:00"  # 01:30 UTC
UTC0 = datetime(2026, 3, 1, 1, 30, tzinfo=UTC)


def test_events_at_the_rows_times_targets_copied_and_a_reimport_writes_nothing(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    rows = [
        complaint_row("K1", severity="normal"),
        complaint_row("K2", status="in_progress", acknowledged_at="2026-03-01T10:00:00+08:00"),
        complaint_row(
            "K3",
            status="closed",
            acknowledged_at="2026-03-01T10:00:00+08:00",
            resolved_at="2026-03-02T15:00:00+08:00",
            verified_at="2026-03-03T09:00:00+08:00",
            closed_at="2026-03-04T09:00:00+08:00",
        ),
        # No offset: read in the settings' zone.
        complaint_row(
            "K4",
            status="waiting_on_customer",
            acknowledged_at="2026-03-01 10:00",
            waiting_since="2026-03-02 11:00",
            customer_title="充值未到账",
        ),
    ]
    path = write_csv(tmp_path / "k.csv", COMPLAINT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (4, 0, 0)
    hour = timedelta(hours=1)
    assert _events(engine, "K1") == [(S.NEW, UTC0, "import")]
    assert _events(engine, "K2") == [
        (S.NEW, UTC0, "import"),
        (S.IN_PROGRESS, UTC0 + hour / 2, "import"),
    ]
    assert [e[:2] for e in _events(engine, "K3")] == [
        (S.NEW, UTC0),
        (S.ACKNOWLEDGED, UTC0 + hour / 2),
        (S.RESOLVED, datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),
        (S.VERIFIED, datetime(2026, 3, 3, 1, 0, tzinfo=UTC)),
        (S.CLOSED, datetime(2026, 3, 4, 1, 0, tzinfo=UTC)),
    ]
    with session_scope(engine) as session:
        # Never the import's time.
        assert session.scalar(select(func.count()).where(ComplaintEvent.at == NOW)) == 0
        k1, k3, k4 = (
            session.scalars(select(Complaint).where(Complaint.external_id == ref)).one()
            for ref in ("K1", "K3", "K4")
        )
        assert k1.source is ComplaintSource.IMPORT and k1.first_response_minutes == 1440
        assert k1.first_response_due_at == UTC0 + timedelta(days=1)
        assert k3.status is S.CLOSED and k3.closed_at == datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
        assert k3.acknowledged_at == UTC0 + hour / 2 and k3.resolved_at is not None
        assert k4.status is S.WAITING_ON_CUSTOMER and k4.paused_since == datetime(
            2026, 3, 2, 3, 0, tzinfo=UTC
        )
        assert k4.customer_title == "充值未到账"
        # All received on 1 March, imported on the 10th: every first response was due long
        # ago, so no receipt; K2..K4 are high (not critical) for non-A customers: no alert.
        assert session.scalars(select(OutboxMessage)).all() == []

    events = count(engine, ComplaintEvent)
    again, errors = run_import(engine, path)
    assert errors == [] and summary(again) == (0, 0, 4)
    assert count(engine, ComplaintEvent) == events


def test_a_later_file_adds_the_steps_after_the_recorded_ones(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "k.csv", COMPLAINT_HEADER, [complaint_row("K1")])
    assert summary(run_import(engine, path)[0]) == (1, 0, 0)
    later = complaint_row(
        "K1",
        status="resolved",
        acknowledged_at="2026-03-01T10:00:00+08:00",
        resolved_at="2026-03-05T10:00:00+08:00",
        description="已更换油卡",
    )
    write_csv(path, COMPLAINT_HEADER, [later])
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (0, 1, 0)
    assert [e[0] for e in _events(engine, "K1")] == [S.NEW, S.ACKNOWLEDGED, S.RESOLVED]
    with session_scope(engine) as session:
        k1 = session.scalars(select(Complaint)).one()
        assert k1.status is S.RESOLVED and k1.description == "已更换油卡"
        assert k1.resolved_at == datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def test_rows_the_recorded_history_refuses_roll_the_whole_file_back(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    first = complaint_row("K1", status="acknowledged", acknowledged_at="2026-03-01T10:00:00+08:00")
    path = write_csv(tmp_path / "k.csv", COMPLAINT_HEADER, [first, complaint_row("K2")])
    assert summary(run_import(engine, path)[0]) == (2, 0, 0)
    events = count(engine, ComplaintEvent)
    rows = [
        complaint_row("K1", status="acknowledged", acknowledged_at="2026-03-01T11:00:00+08:00"),
        complaint_row("K2", description="changed"),  # fine alone, rolled back with the file
        complaint_row("K3"),  # new, rolled back too
    ]
    write_csv(path, COMPLAINT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [
        "k.csv:2: acknowledged_at: differs from the recorded history of complaint K1 "
        "(step 2: acknowledged); change it with crm complaint"
    ]
    assert not result.written and result.errors == 1
    assert count(engine, Complaint) == 2 and count(engine, ComplaintEvent) == events
    with session_scope(engine) as session:
        assert (
            session.scalar(select(Complaint.description).where(Complaint.external_id == "K2"))
            != "changed"
        )

    moved = [complaint_row("K2", assignee_id="S2")]
    write_csv(path, COMPLAINT_HEADER, moved)
    _, errors = run_import(engine, path)
    assert errors == [
        "k.csv:2: assignee_id: differs from the complaint's owner; reassign with crm complaint "
        "assign (the file gives no time for it)"
    ]


def test_lifecycle_times_are_checked_per_field(engine: Engine, org: Org, tmp_path: Path) -> None:
    rows = [
        complaint_row("K1", status="resolved", acknowledged_at="2026-03-01T10:00:00+08:00"),
        complaint_row("K2", status="acknowledged", acknowledged_at="2026-03-01T09:00:00+08:00"),
        complaint_row("K3", resolved_at="2026-03-02T10:00:00+08:00"),
        complaint_row("K4", status="acknowledged", acknowledged_at="2026-03-11T10:00:00+08:00"),
        complaint_row("K5", received_at="2026-03-10T12:06:00+08:00"),
        complaint_row("K6", status="acknowledged", acknowledged_at="soon"),
    ]
    path = write_csv(tmp_path / "f.csv", COMPLAINT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [
        "f.csv:2: resolved_at: required when status is resolved",
        "f.csv:3: acknowledged_at: must be after received_at",
        "f.csv:4: resolved_at: must be empty when status is new",
        "f.csv:5: acknowledged_at: in the future (more than 5 minutes after the import started)",
        "f.csv:6: received_at: in the future (more than 5 minutes after the import started)",
        "f.csv:7: acknowledged_at: not a date-time (expected YYYY-MM-DDTHH:MM[:SS][+08:00]; "
        "no offset = local time)",
    ]
    assert count(engine, Complaint) == 0


def test_fresh_complaints_get_their_receipt_and_alert_once(
    engine: Engine, org: Org, tmp_path: Path
) -> None:
    recent = (NOW - timedelta(hours=1)).isoformat()
    rows = [
        complaint_row("K1", severity="critical", received_at=recent),
        complaint_row("K2", severity="normal", received_at=recent, customer_id="C2",
                      customer_title="发票开错"),
        # Already acknowledged: the promise was kept; no receipt. Critical and open: alert.
        complaint_row("K3", severity="critical", status="acknowledged", received_at=recent,
                      acknowledged_at=(NOW - timedelta(minutes=30)).isoformat(), customer_id="C3"),
    ]  # fmt: skip
    path = write_csv(tmp_path / "k.csv", COMPLAINT_HEADER, rows)
    result, errors = run_import(engine, path)
    assert errors == [] and summary(result) == (3, 0, 0)
    with session_scope(engine) as session:
        keys = sorted(session.scalars(select(OutboxMessage.idempotency_key)))
        boss = session.scalar(select(Staff.id).where(Staff.external_id == "BOSS"))
        k2 = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "complaint_receipt:K2")
        ).one()
    assert keys == [
        f"complaint_intake_alert:K1:staff:{boss}",
        f"complaint_intake_alert:K3:staff:{boss}",
        "complaint_receipt:K1",
        "complaint_receipt:K2",
    ]
    assert k2.context["title"] == "发票开错" and k2.context["owner_name"] == "员工 S1"
    assert k2.context["reply_by"] == "2026-03-11 11:00 (UTC+08:00)"
    again, _ = run_import(engine, path, now=NOW + timedelta(minutes=30))
    assert summary(again) == (0, 0, 3) and count(engine, OutboxMessage) == 4


def test_no_policy_for_the_severity_is_a_row_error(engine: Engine, tmp_path: Path) -> None:
    make_org(engine)  # no SLA policies
    path = write_csv(tmp_path / "k.csv", COMPLAINT_HEADER, [complaint_row("K1")])
    result, errors = run_import(engine, path)
    assert errors == ["k.csv:2: severity: no SLA policy for severity 'high' (class -)"]
    assert count(engine, Complaint) == 0 and not result.written
