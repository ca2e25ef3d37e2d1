"""The monthly feedback report on both backends: figures of a hand-built month (every count
worked out below from the scenario, not from the code), who gets which part, one email per
recipient and month, delivered to a real SMTP server."""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.defaults import ensure_default_policies
from crm_db.enums import EventSource, Severity, StaffRole
from crm_db.models import Complaint, ComplaintFeedbackRoute, OutboxMessage
from crm_db.session import session_scope
from tasks.complaints.feedback_report import queue_feedback_reports
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.rules.feedback_report import month_bounds
from tasks.complaints.rules.lifecycle import Transition
from tasks.mail.deliver import deliver_due
from tests.factories import make_customer, make_org, make_staff
from tests.support.outbox_data import delivery_settings
from tests.support.smtp_servers import FaultySink, running_server

SH = ZoneInfo("Asia/Shanghai")
RUN_AT = datetime(2026, 12, 1, 1, 0, tzinfo=SH)


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=SH)


def _complaint(session, ref, customer, category, product, received, *steps, cause=None):  # type: ignore[no-untyped-def]
    complaint = open_complaint(
        session,
        Intake(ref, customer.id, customer.branch_id, category, Severity.NORMAL, received,
               product=product),
    )  # fmt: skip
    for transition, at in steps:
        apply_event(session, complaint.id, transition, at, None, EventSource.CLI)
    complaint.root_cause = cause
    session.flush()


def _scenario(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        ensure_default_policies(session, now=RUN_AT)
        east, west = make_org(session, "EAST"), make_org(session, "WEST")
        a = make_customer(session, east)
        b = make_customer(session, east)
        c = make_customer(session, west)
        product = make_staff(session, StaffRole.PRODUCT_DEPARTMENT)
        operations = make_staff(session, StaffRole.OPERATIONS_DEPARTMENT)
        make_staff(session, StaffRole.PRODUCT_DEPARTMENT, active=False)
        session.add(ComplaintFeedbackRoute(category="充值到账", department="operations_department"))
        # K1 (east, 油品质量/92#): received Tue 3 Nov 10:00, acknowledged after its 24 h,
        # resolved Fri 6 Nov 16:00; 3 working days (1,620 business minutes) ran out on
        # 6 Nov 10:00: late. First response missed: an omission.
        _complaint(
            session, "K1", a, "油品质量", "92#", local(11, 3, 10),
            (Transition.ACK, local(11, 4, 11)), (Transition.RESOLVE, local(11, 6, 16)),
            cause="批次油品含水",
        )  # fmt: skip
        # K2 (east, 充值到账): acknowledged and resolved the same day: on time.
        _complaint(
            session, "K2", b, "充值到账", None, local(11, 10, 9),
            (Transition.ACK, local(11, 10, 10)), (Transition.RESOLVE, local(11, 10, 15)),
            cause="系统延迟",
        )  # fmt: skip
        # K3 (east, 油品质量/92#), October: last month's count for the trend.
        _complaint(session, "K3", a, "油品质量", "92#", local(10, 20, 9))
        # K4 (west, 发票): never acknowledged, due 13 Nov: an omission.
        _complaint(session, "K4", c, "发票", None, local(11, 12, 9))
        # K5 (east, 发票): October, resolved in October, reopened on 2 November.
        _complaint(
            session, "K5", b, "发票", None, local(10, 5, 9),
            (Transition.ACK, local(10, 5, 10)), (Transition.RESOLVE, local(10, 6, 10)),
            (Transition.REOPEN, local(11, 2, 10)),
        )  # fmt: skip
        return {
            "product": product.id,
            "operations": operations.id,
            "east": east.region_manager.id,
            "west": west.region_manager.id,
        }


def test_monthly_report_figures_recipients_and_once_per_month(engine: Engine) -> None:
    ids = _scenario(engine)
    month = month_bounds("2026-11", SH)
    with session_scope(engine) as session:
        run = queue_feedback_reports(session, month, zone=SH, now=RUN_AT)
    assert (run.queued, run.already_queued, run.departments, run.regions) == (4, 0, 2, 2)
    company = run.company
    # 3 customers; received K1 K2 K4; omitted K1 K4; reopened K5; resolved K1 K2, K2 on time.
    assert (company["customers"], company["received"], company["omitted"]) == (3, 3, 2)
    assert (company["reopened"], company["resolved"], company["resolved_on_time"]) == (1, 2, 1)
    assert company["complaint_rate"] == 100_000.0 and company["sla_compliance_pct"] == 50.0
    assert company["over_goal"] == ["complaint_rate", "omission_rate", "dissatisfaction_rate"]

    with session_scope(engine) as session:
        rows = {m.staff_id: m for m in session.scalars(select(OutboxMessage))}
    assert set(rows) == set(ids.values())
    product = rows[ids["product"]].context
    # Unrouted categories go to the product department; 充值到账 is routed to operations.
    assert [
        (r["category"], r["product"], r["count"], r["previous"]) for r in product["categories"]
    ] == [
        ("发票", None, 1, 1),
        ("油品质量", "92#", 1, 1),
    ]
    assert product["root_causes"] == [{"root_cause": "批次油品含水", "count": 1}]
    assert [(s["reference"], s["hours"]) for s in product["slowest"]] == [("K1", 78.0)]
    assert product["controls"] == company  # departments see the company's controls
    operations = rows[ids["operations"]].context
    assert [(r["category"], r["count"], r["trend_pct"]) for r in operations["categories"]] == [
        ("充值到账", 1, None)
    ]
    assert operations["slowest"][0]["reference"] == "K2"
    west = rows[ids["west"]].context
    assert west["scope_kind"] == "region" and west["scope_name"] == "WEST 片区"
    assert (west["controls"]["customers"], west["controls"]["received"]) == (1, 1)
    assert (west["controls"]["omitted"], west["controls"]["reopened"]) == (1, 0)
    assert west["controls"]["sla_compliance_pct"] is None  # nothing resolved: no rate
    east = rows[ids["east"]].context["controls"]
    assert (east["customers"], east["received"], east["omitted"], east["reopened"]) == (2, 2, 1, 1)

    with session_scope(engine) as session:
        again = queue_feedback_reports(session, month, zone=SH, now=RUN_AT + timedelta(hours=1))
    assert (again.queued, again.already_queued) == (0, 4)
    with running_server(FaultySink()) as smtp:
        report = deliver_due(engine, delivery_settings(port=smtp.port), now=RUN_AT)
        assert report.sent == 4
        messages = {
            r.recipients[0]: message_from_bytes(r.data or b"", policy=policy.default)
            for r in smtp.sink.received
        }
    with session_scope(engine) as session:
        address = session.scalar(
            select(OutboxMessage.recipient_email).where(OutboxMessage.staff_id == ids["product"])
        )
    text = messages[address].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "遗漏率：66666.667（未达标）" in text
    assert "K1（油品质量）：2026-11-03 10:00 (UTC+08:00) 受理" in text
    assert "SLA 达成率：50.0%" in text


def test_dry_run_queues_nothing(engine: Engine) -> None:
    _scenario(engine)
    with session_scope(engine) as session:
        run = queue_feedback_reports(
            session, month_bounds("2026-11", SH), zone=SH, now=RUN_AT, dry_run=True
        )
        assert run.queued == 4
        assert session.scalars(select(OutboxMessage)).all() == []
        assert session.scalar(select(Complaint.id).where(Complaint.external_id == "K1"))


def test_report_command(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _scenario(engine)
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    reset_settings_cache()
    from crm_cli.main import app

    runner = CliRunner()
    bad = runner.invoke(app, ["complaint", "report", "--month", "2026-13"])
    assert bad.exit_code == 2 and "month '2026-13' is not YYYY-MM" in bad.output
    dry = runner.invoke(app, ["complaint", "report", "--month", "2026-11", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("dry run: feedback report 2026-11: queued 4, already queued 0")
    real = runner.invoke(app, ["complaint", "report", "--month", "2026-11"])
    again = runner.invoke(app, ["complaint", "report", "--month", "2026-11"])
    assert "queued 4, already queued 0" in real.output
    assert "queued 0, already queued 4" in again.output
    assert "omission rate 66666.667, dissatisfaction rate 33333.333 (goal < 1)" in again.output
    reset_settings_cache()


def test_the_month_a_run_reports_is_the_last_complete_one() -> None:
    from datetime import date

    from tasks.complaints.rules.feedback_report import month_to_report

    assert month_to_report(date(2026, 12, 1)) == "2026-11"
    assert month_to_report(date(2026, 12, 31)) == "2026-11"
    assert month_to_report(date(2027, 1, 2)) == "2026-12"


def test_the_scheduled_report_is_queued_by_the_first_run_of_the_month_only(
    engine: Engine,
) -> None:
    from datetime import date

    from tasks.complaints.feedback_report import queue_due_feedback_report

    ids = _scenario(engine)
    with session_scope(engine) as session:
        dry = queue_due_feedback_report(session, date(2026, 12, 1), zone=SH, now=RUN_AT,
                                        dry_run=True)  # fmt: skip
    assert dry is not None and dry.queued == 4
    with session_scope(engine) as session:
        assert session.scalars(select(OutboxMessage)).all() == []
        first = queue_due_feedback_report(session, date(2026, 12, 1), zone=SH, now=RUN_AT)
    assert first is not None and (first.month, first.queued) == ("2026-11", 4)
    with session_scope(engine) as session:
        later = queue_due_feedback_report(session, date(2026, 12, 2), zone=SH, now=RUN_AT)
        # Asked for explicitly, the month is computed again, and each recipient has it already.
        forced = queue_due_feedback_report(
            session, date(2026, 12, 2), zone=SH, now=RUN_AT, month="2026-11"
        )
        keys = sorted(session.scalars(select(OutboxMessage.idempotency_key)))
    assert later is None
    assert forced is not None and (forced.queued, forced.already_queued) == (0, 4)
    assert keys == sorted(f"complaint_feedback_report:2026-11:staff:{i}" for i in ids.values())
