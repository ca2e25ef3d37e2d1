"""The target report emails and files (IO), from a real reconciliation on a real database:
the leaderboard and the quarter's award list in each view (a region manager sees their own
people only, with their company rank), the chart inline by CID and the XLSX sheets, every
view's files under the reports folder; and the email as a real SMTP server receives it
(aiosmtpd): the HTML part in a multipart/related with the PNG its cid: names."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crm_db.enums import CardType, StaffRole, TransactionKind
from crm_db.models import Staff, Transaction
from crm_db.session import session_scope
from tasks.mail.deliver import deliver_due
from tasks.mail.message import Attachment
from tasks.mail.outbox import NewMessage, enqueue
from tasks.mail.render import render_email
from tasks.targets.reconciliation import Reconciliation, compute
from tasks.targets.reports import (
    BuiltReports,
    build_reports,
    reports_folder,
    write_report_files,
)
from tasks.targets.rules.plan import RunKind
from tests.factories import Org, make_customer, make_org, make_staff
from tests.support.outbox_data import delivery_settings
from tests.support.smtp_servers import FaultySink, running_server

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 1, 1, 1, 0, tzinfo=UTC)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class World:
    north: Org
    south: Org
    north_second: Staff  # a second account manager of the north region
    admin: Staff


def _developed(session: Session, org: Org, owner: Staff, on: date, recharges: list[int]) -> None:
    """One new card per recharge amount, issued ``on`` and recharged the same day."""
    for fen in recharges:
        customer = make_customer(
            session, org, card_type=CardType.PERSONAL, first_card_on=on, account_manager_id=owner.id
        )
        session.add(
            Transaction(
                customer_id=customer.id,
                branch_id=org.branch.id,
                kind=TransactionKind.RECHARGE,
                amount_fen=fen,
                volume_ml=0,
                occurred_on=on,
            )
        )


def _world(engine: Engine) -> World:
    with session_scope(engine) as session:
        north, south = make_org(session), make_org(session)
        second = make_staff(
            session,
            StaffRole.ACCOUNT_MANAGER,
            branch_id=north.branch.id,
            manager_id=north.branch_manager.id,
        )
        admin = make_staff(session, StaffRole.MARKETING_ADMIN, locale="en")
        # December: north's two account managers tie (2 cards, 500 CNY); south's has 1 card.
        _developed(session, north, north.account_manager, date(2026, 12, 3), [30_000, 20_000])
        _developed(session, north, second, date(2026, 12, 9), [25_000, 25_000])
        _developed(session, south, south.account_manager, date(2026, 12, 10), [90_000])
        # October: one more card for north's first manager (the quarter, not December).
        _developed(session, north, north.account_manager, date(2026, 10, 20), [10_000])
        session.expunge_all()
        return World(north, south, second, admin)


def _reports(engine: Engine) -> tuple[Reconciliation, BuiltReports]:
    result = compute(engine, RunKind.MONTHLY, date(2027, 1, 1), ZONE)
    with engine.connect() as conn:
        built = build_reports(
            conn, result, revision=1, resend=False, company_name="测试公司", run_id=None
        )
    return result, built


def _by_staff(built: BuiltReports) -> dict[int, NewMessage]:
    return {m.staff_id: m for m in built.messages if m.staff_id is not None}


def _sheets(attachment: Attachment) -> dict[str, list[tuple[object, ...]]]:
    book = load_workbook(io.BytesIO(attachment.data), read_only=True)
    return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}


def test_leaderboard_award_chart_and_workbook_per_view(engine: Engine, tmp_path: Path) -> None:
    world = _world(engine)
    result, built = _reports(engine)
    assert result.plan.label == "2026-12" and result.plan.quarter is not None
    north_am, second, south_am = (
        world.north.account_manager,
        world.north_second,
        world.south.account_manager,
    )
    messages = _by_staff(built)
    assert set(messages) == {
        world.north.region_manager.id,
        world.south.region_manager.id,
        world.admin.id,
    }

    company = messages[world.admin.id].context
    board = [
        (e["rank"], e["name"], e["new_customers"], e["first_recharge"])
        for e in company["leaderboard"]["entries"]
    ]
    # A tie on both figures shares rank 1, listed by id; south's larger recharge ranks third.
    assert board == [
        (1, north_am.name, 2, 500.0),
        (1, second.name, 2, 500.0),
        (3, south_am.name, 1, 900.0),
    ]
    award = company["award"]
    assert (award["quarter"], award["top_pct"], award["ranked"], award["places"]) == (
        "2026Q4",
        10,
        3,
        1,
    )
    # The quarter: north's first manager has 3 cards (October's too) and wins alone.
    assert [(e["rank"], e["name"], e["new_customers"], e["active"]) for e in award["entries"]] == [
        (1, north_am.name, 3, True)
    ]

    north = messages[world.north.region_manager.id]
    assert [e["name"] for e in north.context["leaderboard"]["entries"]] == [
        north_am.name,
        second.name,
    ]
    assert [e["name"] for e in north.context["award"]["entries"]] == [north_am.name]
    south = messages[world.south.region_manager.id]
    assert [(e["rank"], e["name"]) for e in south.context["leaderboard"]["entries"]] == [
        (3, south_am.name)
    ]
    assert south.context["award"]["entries"] == []  # nobody of the region won

    for message in built.messages:
        chart, workbook = message.attachments
        assert chart.content_type == "image/png" and chart.content_id is not None
        assert chart.data.startswith(b"\x89PNG") and workbook.content_type == XLSX
        assert message.context["chart"]["cid"] == chart.content_id
        rendered = render_email(message.kind, message.locale, message.context)
        assert f'src="cid:{chart.content_id}"' in rendered.html

    north_sheets = _sheets(north.attachments[1])
    assert list(north_sheets)[1:] == ["客户开发英雄榜", "季度奖励 2026Q4"]
    header, *rows = north_sheets["客户开发英雄榜"]
    assert header[:5] == ("排名", "姓名", "片区", "新开发客户数", "首次办卡充值金额（元）")
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        (1, north_am.name, 2, 500),
        (1, second.name, 2, 500),
    ]
    # Nothing of the south region in the north manager's email or workbook.
    north_text = render_email(north.kind, north.locale, north.context)
    for part in (north_text.html, north_text.text, str(north_sheets)):
        assert south_am.name not in part and world.south.region.name not in part
    assert "award 2026Q4" in _sheets(messages[world.admin.id].attachments[1])  # en

    # Every view's files (company and both regions, in zh-CN), whoever receives them.
    names = sorted(f.filename for f in built.files)
    codes = sorted(["company", world.north.region.code, world.south.region.code])
    assert names == sorted(f"targets-2026-12-{c}.{ext}" for c in codes for ext in ("png", "xlsx"))
    folder = reports_folder(result, 1, root=tmp_path)
    assert folder == tmp_path / "reports" / "targets" / "monthly-calendar-2026-12-rev1"
    written = write_report_files(built.files, folder)
    assert [p.read_bytes() for p in written] == [f.data for f in built.files]
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary file left


def test_the_received_email_carries_the_chart_inline(sqlite_engine: Engine) -> None:
    world = _world(sqlite_engine)
    _, built = _reports(sqlite_engine)
    with session_scope(sqlite_engine) as session:
        assert enqueue(session, built.messages, now=NOW).inserted == 3
    sink = FaultySink()
    with running_server(sink) as server:
        report = deliver_due(sqlite_engine, delivery_settings(port=server.port), now=NOW)
    assert report.sent == 3
    received = {
        item.recipients[0]: message_from_bytes(item.data or b"", policy=policy.default)
        for item in sink.received
    }
    north = received[world.north.region_manager.email or ""]
    assert isinstance(north, EmailMessage) and north.get_content_type() == "multipart/mixed"
    related = next(p for p in north.walk() if p.get_content_type() == "multipart/related")
    html_part, image = related.iter_parts()
    assert html_part.get_content_type() == "text/html" and image.get_content_type() == "image/png"
    cid = str(image["Content-ID"]).strip("<>")
    assert f"cid:{cid}" in html_part.get_content()
    assert image.get_content_disposition() == "inline"
    assert image.get_content().startswith(b"\x89PNG")
    (workbook,) = north.iter_attachments()
    assert workbook.get_filename() == f"targets-2026-12-{world.north.region.code}.xlsx"
