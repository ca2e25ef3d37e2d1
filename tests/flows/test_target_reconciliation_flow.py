"""The target_reconciliation flow end to end: a real Prefect run on a real database (both
backends): a snapshot with its rows and report emails in one transaction, the target version it
used; each region manager's email holds their region only; a re-run supersedes the snapshot (the
first kept as written) and emails again only with resend; a dry run writes nothing; weekly."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import Engine, func, select

from crm_core.paths import var_dir
from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    CardType,
    RunStatus,
    StaffRole,
    TargetMetric,
    TargetScope,
    TransactionKind,
)
from crm_db.models import (
    FlowRun,
    OutboxAttachment,
    OutboxMessage,
    ReconciliationRow,
    ReconciliationSnapshot,
    Transaction,
)
from crm_db.session import dispose_shared_engines, session_scope
from flows.registry import FLOWS
from flows.target_reconciliation import target_reconciliation
from tasks.mail.render import render_email
from tasks.targets.store import TargetValue, create_version, write_values
from tests.factories import make_customer, make_org, make_staff

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
REV = TargetMetric.REVENUE_FEN


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_VAR_DIR", str(tmp_path))  # this run's var/reports/ only
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _sheets_text(data: bytes) -> list[str]:
    """The text of each sheet of an XLSX attachment."""
    book = load_workbook(io.BytesIO(data), read_only=True)
    return [
        "\n".join(str(v) for row in ws.iter_rows(values_only=True) for v in row if v is not None)
        for ws in book.worksheets
    ]


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_monthly_snapshot_rerun_supersedes_and_weekly(crm_db: Engine) -> None:
    assert FLOWS["target_reconciliation"] is target_reconciliation
    with session_scope(crm_db) as session:
        north, south = make_org(session), make_org(session)
        for org, fen in ((north, 900_000), (south, 1_300_000)):
            customer = make_customer(
                session, org, card_type=CardType.COMPANY, first_card_on=date(2026, 11, 2)
            )
            for on in (date(2026, 11, 2), date(2026, 12, 2)):
                session.add(
                    Transaction(
                        customer_id=customer.id,
                        branch_id=org.branch.id,
                        kind=TransactionKind.PURCHASE,
                        amount_fen=fen,
                        volume_ml=fen // 7,
                        occurred_on=on,
                    )
                )
        admin = make_staff(session, StaffRole.MARKETING_ADMIN, locale="en")
        conn = session.connection()
        version = create_version(conn, now=NOW, created_by="test", source="import")
        values = [
            TargetValue(("2026-11", TargetScope.BRANCH, north.branch.id, REV), 1_000_000),
            TargetValue(("2026-11", TargetScope.BRANCH, south.branch.id, REV), 1_000_000),
            TargetValue(("2026-11", TargetScope.REGION, north.region.id, REV), 1_000_000),
            TargetValue(("2026-11", TargetScope.REGION, south.region.id, REV), 1_200_000),
            TargetValue(("2026-12", TargetScope.BRANCH, north.branch.id, REV), 2_300_000),
        ]
        write_values(conn, version, values)
        north_branch, south_branch, south_region = north.branch.id, south.branch.id, south.region.id
        managers = {north.region_manager.id: north, south.region_manager.id: south}
        names = {
            org.region_manager.id: (org.branch.name, org.region.name) for org in (north, south)
        }
        admin_id = admin.id

    summary = target_reconciliation(as_of=date(2026, 12, 1))
    counts = summary["counts"]
    assert counts["target_version"] == version and counts["revision"] == 1
    assert counts["flag_target_mismatch"] >= 1  # south: 1.2M region vs 1.0M branch
    assert any("target_mismatch" in text for text in summary["warnings"])
    assert summary["artifact_key"] == "target-reconciliation-summary"
    assert counts["reports_queued"] == 3  # two region managers and the marketing admin
    with session_scope(crm_db) as session:
        queued = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert {m.staff_id for m in queued} == {*managers, admin_id}
        for message in queued:
            assert message.idempotency_key == (
                f"target_report:monthly:calendar:2026-11:staff:{message.staff_id}"
            )
            rendered = render_email(message.kind, message.locale, message.context)
            chart, attachment = session.scalars(
                select(OutboxAttachment)
                .where(OutboxAttachment.outbox_id == message.id)
                .order_by(OutboxAttachment.position)
            ).all()
            assert chart.content_type == "image/png" and chart.content_id
            assert f'src="cid:{chart.content_id}"' in rendered.html
            sheets = _sheets_text(attachment.data)
            if message.staff_id == admin_id:  # the company view: regions, no stations
                assert message.context["scope_kind"] == "company"
                assert attachment.filename == "targets-2026-11-company.xlsx"
                # The company, each region with its stations, then the leaderboard.
                assert len(sheets) == 4
                assert all(names[m][0] in "".join(sheets) for m in managers)
                assert all(names[m][1] in rendered.html for m in managers)
                assert not any(names[m][0] in rendered.html for m in managers)
                continue
            assert message.staff_id is not None
            own_branch, own_region = names[message.staff_id]
            other_branch, other_region = next(v for k, v in names.items() if k != message.staff_id)
            assert [m["name"] for m in message.context["members"]] == [own_region, own_branch]
            assert len(sheets) == 2 and own_branch in sheets[0]  # and the leaderboard
            assert message.context["award"] is None  # November closes no quarter
            for part in (rendered.html, rendered.text, rendered.subject, sheets[0]):
                assert other_branch not in part and other_region not in part
            assert own_branch in rendered.html and own_branch in rendered.text
    with session_scope(crm_db) as session:
        snapshot = session.scalars(select(ReconciliationSnapshot)).one()
        assert (snapshot.kind, snapshot.period, snapshot.target_version_id) == (
            "monthly",
            "2026-11",
            version,
        )
        assert (snapshot.period_start, snapshot.period_end) == (
            date(2026, 11, 1),
            date(2026, 11, 30),
        )
        assert snapshot.parameters["kind"] == "monthly" and snapshot.run_id is not None
        rows = {
            (r.scope, r.scope_id, r.metric): r
            for r in session.scalars(
                select(ReconciliationRow).where(ReconciliationRow.snapshot_id == snapshot.id)
            )
        }
        assert counts["rows_written"] == len(rows)
        north_row = rows[(TargetScope.BRANCH, north_branch, REV)]
        south_row = rows[(TargetScope.BRANCH, south_branch, REV)]
        assert (north_row.actual, north_row.completion, north_row.flags) == (900_000, 0.9, "")
        assert (south_row.actual, south_row.flags, south_row.rank) == (1_300_000, "star", 1)
        assert north_row.rank == 2
        region = rows[(TargetScope.REGION, south_region, REV)]
        assert region.branch_target_sum == 1_000_000 and "target_mismatch" in region.flags
        new = rows[(TargetScope.COMPANY, 0, TargetMetric.NEW_CUSTOMERS_COMPANY)]
        assert new.actual == 2 and new.flags == "no_target"
        first_id, first_rows = snapshot.id, len(rows)
    # Every view's XLSX and chart under var/reports/, in the revision's folder.
    folder = var_dir() / "reports" / "targets" / "monthly-calendar-2026-11-rev1"
    assert counts["report_files"] == 6 and len(list(folder.glob("*.png"))) == 3
    assert (folder / "targets-2026-11-company.xlsx").is_file()
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["target-reconciliation-reports"])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    table = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    assert {row["path"] for row in table} == {str(p) for p in folder.iterdir()}
    assert {row["view"] for row in table} >= {"company"}

    again = target_reconciliation(as_of=date(2026, 12, 1))
    assert again["counts"]["revision"] == 2
    assert again["counts"]["superseded_snapshot_id"] == first_id
    assert (again["counts"]["reports_queued"], again["counts"]["reports_already_queued"]) == (0, 3)
    dry = target_reconciliation(as_of=date(2026, 12, 1), dry_run=True, resend=True)
    assert dry["ledger_run_id"] is None and "snapshot_id" not in dry["counts"]
    assert dry["counts"]["reports_would_queue"] == 3
    assert _count(crm_db, ReconciliationSnapshot) == 2 and _count(crm_db, OutboxMessage) == 3
    resent = target_reconciliation(as_of=date(2026, 12, 1), resend=True)
    assert (resent["counts"]["revision"], resent["counts"]["reports_queued"]) == (3, 3)
    assert not (var_dir() / "reports" / "targets" / "monthly-calendar-2026-11-rev4").exists()
    assert (var_dir() / "reports" / "targets" / "monthly-calendar-2026-11-rev3").is_dir()
    with session_scope(crm_db) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key)).all()
    assert sum(key.endswith(":rev3") for key in keys) == 3 and len(keys) == 6
    with session_scope(crm_db) as session:
        kept = session.scalar(select(func.count()).where(ReconciliationRow.snapshot_id == first_id))
        assert kept == first_rows  # the superseded snapshot stays as it was written

    weekly = target_reconciliation(as_of=date(2026, 12, 6), kind="weekly")
    # The three reports and each region manager's 周反馈表 link.
    assert weekly["counts"]["revision"] == 1 and weekly["counts"]["reports_queued"] == 3 + 2
    with session_scope(crm_db) as session:
        week = session.scalars(
            select(ReconciliationSnapshot).where(ReconciliationSnapshot.kind == "weekly")
        ).one()
        assert (week.period, week.target_month, week.period_end) == (
            "2026-W49",
            "2026-12",
            date(2026, 12, 5),
        )
        row = session.scalars(
            select(ReconciliationRow).where(
                ReconciliationRow.snapshot_id == week.id,
                ReconciliationRow.scope == TargetScope.BRANCH,
                ReconciliationRow.scope_id == north_branch,
                ReconciliationRow.metric == REV,
            )
        ).one()
        # 4 of December's 23 working days: 2.3M pro-rated to 400,000; 900,000 done.
        assert (row.target, row.expected, row.actual) == (2_300_000, 400_000, 900_000)
        assert row.flags == "star"
        statuses = session.scalars(
            select(FlowRun.status).where(FlowRun.flow_name == "target_reconciliation")
        ).all()
    assert list(statuses) == [RunStatus.COMPLETED] * 4
