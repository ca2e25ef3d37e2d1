"""Intake on both backends: ``crm complaint open`` records a complaint with the targets in force,
queues the customer's receipt and senior management's intake alert once, and a real SMTP server
receives them; ``crm complaint recompute`` is the only way an edited policy reaches an open
complaint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.defaults import ensure_default_policies
from crm_db.enums import AbcClass, ComplaintEventKind, ComplaintStatus, StaffRole
from crm_db.models import Complaint, ComplaintEvent, Customer, OutboxMessage, SlaPolicy
from crm_db.session import session_scope
from crm_db.types import utcnow
from tasks.complaints.intake import queue_intake_notices
from tasks.mail.deliver import deliver_due
from tests.factories import make_customer, make_org, make_staff
from tests.support.outbox_data import delivery_settings
from tests.support.smtp_servers import FaultySink, running_server


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_MAIL_FROM", "CRM Flows <crm@example.test>")
    reset_settings_cache()
    yield CliRunner()
    reset_settings_cache()


def _app():  # type: ignore[no-untyped-def]
    from crm_cli.main import app

    return app


def _seed(engine: Engine, abc: AbcClass | None = AbcClass.B, **customer: object) -> dict[str, str]:
    with session_scope(engine) as session:
        ensure_default_policies(session, now=utcnow())
        org = make_org(session)
        person = make_customer(session, org, abc_class=abc, **customer)
        boss = make_staff(session, StaffRole.EXECUTIVE)
        make_staff(session, StaffRole.EXECUTIVE, active=False)
        return {
            "customer": person.external_id,
            "owner": org.branch_manager.external_id,
            "owner_name": org.branch_manager.name,
            "manager_name": org.account_manager.name,
            "boss": str(boss.id),
        }


def _open(cli: CliRunner, seeded: dict[str, str], *extra: str, at: datetime) -> str:
    result = cli.invoke(
        _app(),
        [
            "complaint", "open", "--customer", seeded["customer"], "--category", "油品质量",
            "--title", "加油后车辆抖动", "--description", "内部：疑似批次问题", "--at",
            at.isoformat(), *extra,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output.strip()


def test_open_queues_a_receipt_naming_reference_owner_and_reply_time(
    engine: Engine, cli: CliRunner
) -> None:
    seeded = _seed(engine)
    at = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    line = _open(cli, seeded, "--severity", "normal", "--owner", seeded["owner"], at=at)
    assert (
        line.startswith("complaint CP") and ": new; receipts 1, senior management alerts 0" in line
    )
    with session_scope(engine) as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.received_at == at and complaint.status is ComplaintStatus.NEW
        assert complaint.first_response_due_at == at + timedelta(minutes=1440)
        assert complaint.customer_title == "加油后车辆抖动"
        [receipt] = session.scalars(select(OutboxMessage)).all()
        assert receipt.kind == "complaint_receipt" and receipt.customer_id == complaint.customer_id
        assert receipt.idempotency_key == f"complaint_receipt:{complaint.external_id}"
        due_local = (at + timedelta(days=1)).astimezone(UTC) + timedelta(hours=8)
        assert receipt.context["reply_by"] == f"{due_local:%Y-%m-%d %H:%M} (UTC+08:00)"
        assert receipt.context["owner_name"] == seeded["owner_name"]
        assert "内部" not in str(receipt.context)  # the description is internal
        # Queuing the notices again (a re-run) adds nothing.
        again = queue_intake_notices(session, [complaint], now=utcnow())
        assert (again.receipts, again.alerts, again.already_queued) == (0, 0, 1)
        reference = complaint.external_id

    with running_server(FaultySink()) as smtp:
        report = deliver_due(engine, delivery_settings(port=smtp.port), now=utcnow())
        assert report.sent == 1
        [got] = smtp.sink.received
    text = message_from_bytes(got.data or b"", policy=policy.default)
    assert reference in str(text["Subject"])
    body = text.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert f"受理编号：{reference}" in body and f"负责人：{seeded['owner_name']}" in body
    assert f"我们最迟将于 {due_local:%Y-%m-%d %H:%M} (UTC+08:00) 前与您联系" in body


def test_critical_reaches_active_senior_management_and_an_unassigned_receipt_names_the_owner(
    engine: Engine, cli: CliRunner
) -> None:
    seeded = _seed(engine, marketing_opt_out=True, survey_opt_out=True)
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    line = _open(cli, seeded, "--severity", "critical", at=at)
    # Opt-outs do not stop a receipt (transactional); the inactive executive gets nothing.
    assert "receipts 1, senior management alerts 1" in line
    with session_scope(engine) as session:
        rows = {m.kind: m for m in session.scalars(select(OutboxMessage))}
        complaint = session.scalars(select(Complaint)).one()
    assert set(rows) == {"complaint_receipt", "complaint_intake_alert"}
    alert = rows["complaint_intake_alert"]
    assert alert.staff_id == int(seeded["boss"]) and alert.customer_id is None
    assert (
        alert.idempotency_key
        == f"complaint_intake_alert:{complaint.external_id}:staff:{alert.staff_id}"
    )
    assert alert.context["severity"] == "critical"
    # Nobody named: the receipt names whom the check will assign it to (the account manager).
    assert rows["complaint_receipt"].context["owner_name"] == seeded["manager_name"]
    assert complaint.first_response_due_at == at + timedelta(minutes=120)


def test_a_classs_high_alerts_a_b_classs_high_does_not(engine: Engine, cli: CliRunner) -> None:
    a = _seed(engine, AbcClass.A)
    at = (utcnow() - timedelta(minutes=5)).replace(microsecond=0)
    assert "senior management alerts 1" in _open(cli, a, "--severity", "high", at=at)
    b = _seed(engine, AbcClass.B)
    assert "senior management alerts 0" in _open(cli, b, "--severity", "high", at=at)


def test_no_receipt_when_unsubscribed_or_when_the_promise_is_already_past(
    engine: Engine, cli: CliRunner
) -> None:
    seeded = _seed(engine, unsubscribed_at=datetime(2026, 1, 1, tzinfo=UTC))
    now = utcnow().replace(microsecond=0)
    assert "receipts 0" in _open(cli, seeded, "--severity", "low", at=now)
    assert "no receipt (unsubscribed) 1" in _open(cli, seeded, "--severity", "low", at=now)
    other = _seed(engine)
    # Back-dated two days: the first response was due yesterday; no receipt promises it.
    late = _open(cli, other, "--severity", "low", at=now - timedelta(days=2))
    assert "receipts 0" in late
    with session_scope(engine) as session:
        refs = sorted(session.scalars(select(Complaint.external_id)))
        assert session.scalars(select(OutboxMessage.kind)).all() == []
    assert len(refs) == 3 and len(set(refs)) == 3  # one reference number each


def test_refusals_are_one_line(engine: Engine, cli: CliRunner) -> None:
    seeded = _seed(engine)
    unknown = cli.invoke(
        _app(), ["complaint", "open", "--customer", "NOPE", "--severity", "low",
                 "--category", "x", "--title", "y"],
    )  # fmt: skip
    assert unknown.exit_code == 1 and "no customer with external id 'NOPE'" in unknown.output
    bad_title = cli.invoke(
        _app(), ["complaint", "open", "--customer", seeded["customer"], "--severity", "low",
                 "--category", "x", "--title", "a\nb"],
    )  # fmt: skip
    assert bad_title.exit_code == 1 and "--title must be one line" in bad_title.output


def test_recompute_is_the_only_way_an_edited_policy_reaches_an_open_complaint(
    engine: Engine, cli: CliRunner
) -> None:
    seeded = _seed(engine)
    at = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    first = _open(cli, seeded, "--severity", "normal", at=at).split(":")[0].split()[1]
    second = _open(cli, seeded, "--severity", "normal", at=at).split(":")[0].split()[1]
    closed = cli.invoke(
        _app(), ["complaint", "start", second, "--at", (at + timedelta(minutes=1)).isoformat()]
    )
    assert closed.exit_code == 0, closed.output
    for step, minute in (("resolve", 2), ("verify", 3), ("close", 4)):
        done = cli.invoke(
            _app(),
            ["complaint", step, second, "--at", (at + timedelta(minutes=minute)).isoformat()],
        )
        assert done.exit_code == 0, done.output
    with session_scope(engine) as session:
        session.execute(
            update(SlaPolicy).where(SlaPolicy.code == "normal").values(first_response_minutes=600)
        )
    with session_scope(engine) as session:
        row = session.scalars(select(Complaint).where(Complaint.external_id == first)).one()
        assert row.first_response_due_at == at + timedelta(minutes=1440)  # unchanged by the edit

    out = cli.invoke(_app(), ["complaint", "recompute", "--all-open"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "recomputed 1 of 1 complaint(s); 0 already current or closed"
    again = cli.invoke(_app(), ["complaint", "recompute", first])
    assert again.output.strip() == "recomputed 0 of 1 complaint(s); 1 already current or closed"
    with session_scope(engine) as session:
        row = session.scalars(select(Complaint).where(Complaint.external_id == first)).one()
        assert row.first_response_minutes == 600
        assert row.first_response_due_at == at + timedelta(minutes=600)
        events = session.scalars(
            select(ComplaintEvent).where(ComplaintEvent.kind == ComplaintEventKind.RECOMPUTE)
        ).all()
        assert [e.complaint_id for e in events] == [row.id]
        assert "first_response_minutes 1440->600" in (events[0].note or "")
        old = session.scalars(select(Complaint).where(Complaint.external_id == second)).one()
        assert old.first_response_minutes == 1440  # closed: history keeps its targets
    both = cli.invoke(_app(), ["complaint", "recompute", first, "--all-open"])
    assert both.exit_code == 2


def test_customer_branch_timezone_sets_the_promised_time(engine: Engine, cli: CliRunner) -> None:
    seeded = _seed(engine)
    from crm_db.models import BusinessCalendar, Region

    with session_scope(engine) as session:
        berlin = BusinessCalendar(code="DE", name="Berlin", timezone="Europe/Berlin")
        session.add(berlin)
        session.flush()
        customer = session.scalars(
            select(Customer).where(Customer.external_id == seeded["customer"])
        ).one()
        session.execute(update(Region).values(calendar_id=berlin.id))
        assert customer.branch_id is not None
    at = datetime.now(UTC).replace(microsecond=0, second=0) - timedelta(minutes=3)
    _open(cli, seeded, "--severity", "normal", at=at)
    with session_scope(engine) as session:
        receipt = session.scalars(select(OutboxMessage)).one()
    due = (at + timedelta(days=1)).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    offset = due.strftime("%z")
    assert receipt.context["reply_by"] == f"{due:%Y-%m-%d %H:%M} (UTC{offset[:3]}:{offset[3:]})"


@pytest.mark.postgres
def test_two_concurrent_intakes_on_postgres_get_distinct_references(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both pick the same next number; the second waits for the first's unique key, is
    # refused, and retries the next number in a savepoint - its transaction goes on.
    import threading

    from sqlalchemy.orm import Session

    from crm_db.enums import ComplaintSource, Severity
    from tasks.complaints import intake
    from tasks.complaints.lifecycle import Intake

    with session_scope(pg_engine) as session:
        ensure_default_policies(session, now=utcnow())
        org = make_org(session)
        customer_id = make_customer(session, org).id
    at = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    picked: list[tuple[str, str]] = []
    real = intake.new_reference

    def spy(session: Session, when: datetime) -> str:
        reference = real(session, when)
        picked.append((threading.current_thread().name, reference))
        return reference

    monkeypatch.setattr(intake, "new_reference", spy)

    def make(reference: str) -> Intake:
        return Intake(
            reference,
            customer_id,
            org.branch.id,
            "充值到账",
            Severity.NORMAL,
            at,
            source=ComplaintSource.CLI,
        )

    first_inserted, second_done = threading.Event(), threading.Event()
    references: dict[str, str] = {}

    def first() -> None:
        with session_scope(pg_engine) as session:
            references["first"] = intake.open_with_reference(session, at, make).external_id
            first_inserted.set()
            second_done.wait(timeout=1.0)  # the second blocks on our key until we commit

    def second() -> None:
        first_inserted.wait(timeout=10)
        with session_scope(pg_engine) as session:
            references["second"] = intake.open_with_reference(session, at, make).external_id
        second_done.set()

    threads = [threading.Thread(target=f, name=f.__name__) for f in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert references == {"first": "CP20260000001", "second": "CP20260000002"}
    # The second picked the first's number before it was committed, then the next one.
    assert [r for name, r in picked if name == "second"] == ["CP20260000001", "CP20260000002"]
    with session_scope(pg_engine) as session:
        stored = sorted(session.scalars(select(Complaint.external_id)))
    assert stored == ["CP20260000001", "CP20260000002"]


def test_feedback_from_a_source_opens_notes_or_reopens_once(engine: Engine) -> None:
    from crm_db.enums import EventSource
    from tasks.complaints.intake import SourceEffect, open_or_reopen_from_source
    from tasks.complaints.lifecycle import apply_event
    from tasks.complaints.rules.lifecycle import Transition

    at = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=at)
        customer_id = make_customer(session, make_org(session)).id
    with session_scope(engine) as session:
        opened = open_or_reopen_from_source(session, customer_id, "survey", 77, "油价<不透明>", at)
    assert opened.effect is SourceEffect.OPENED and opened.reference.startswith("CP2026")
    with session_scope(engine) as session:
        again = open_or_reopen_from_source(session, customer_id, "survey", 77, "x", at)
        complaint = session.get(Complaint, opened.complaint_id)
        assert complaint is not None
        assert (str(complaint.source), complaint.source_ref) == ("survey", "survey:77")
        assert complaint.description == "油价<不透明>"
        receipts = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "complaint_receipt")
        ).all()
    assert again == opened.__class__(SourceEffect.EXISTING, opened.complaint_id, opened.reference)
    assert len(receipts) == 1
    with session_scope(engine) as session:
        noted = open_or_reopen_from_source(
            session, customer_id, "survey", 78, "还是没解决", at + timedelta(hours=1)
        )
        note = session.scalar(
            select(ComplaintEvent).where(ComplaintEvent.detail_key == "survey:78")
        )
        assert note is not None and note.kind is ComplaintEventKind.NOTE
    assert (noted.effect, noted.complaint_id) == (SourceEffect.NOTED, opened.complaint_id)
    with session_scope(engine) as session:
        for n, transition in enumerate((Transition.ACK, Transition.RESOLVE), start=2):
            apply_event(session, opened.complaint_id, transition, at + timedelta(hours=n),
                        None, EventSource.CLI)  # fmt: skip
    with session_scope(engine) as session:
        reopened = open_or_reopen_from_source(
            session, customer_id, "survey", 79, "", at + timedelta(days=2)
        )
        status = session.scalar(select(Complaint.status).where(Complaint.id == opened.complaint_id))
    assert (reopened.effect, reopened.complaint_id) == (SourceEffect.REOPENED, opened.complaint_id)
    assert status is ComplaintStatus.IN_PROGRESS
    with session_scope(engine) as session:
        apply_event(session, opened.complaint_id, Transition.RESOLVE, at + timedelta(days=3),
                    None, EventSource.CLI)  # fmt: skip
    with session_scope(engine) as session:
        # Resolved longer ago than the reopen window: a new complaint.
        fresh = open_or_reopen_from_source(
            session, customer_id, "survey", 80, "新问题", at + timedelta(days=40)
        )
    assert fresh.effect is SourceEffect.OPENED and fresh.complaint_id != opened.complaint_id
