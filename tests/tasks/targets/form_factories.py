"""Plain factories for the weekly form tests: two regions with one station each, December
targets and purchases, and Sunday's weekly snapshot written by the real reconciliation (the
same ``compute`` and ``write_snapshot`` the flow runs), so the form shows what the flow stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from crm_db.enums import CardType, TargetMetric, TargetScope, TransactionKind
from crm_db.models import Transaction, WeeklyForm
from crm_db.session import session_scope
from tasks.mail.links import weekly_form_token, weekly_form_url
from tasks.targets.reconciliation import compute, write_snapshot
from tasks.targets.rules.plan import RunKind
from tasks.targets.rules.weekly_forms import closes_at
from tasks.targets.store import TargetValue, create_version, write_values
from tests.factories import make_customer, make_org

SHANGHAI = ZoneInfo("Asia/Shanghai")
SUNDAY = date(2026, 12, 6)  # the weekly run's as_of: the week 2026-W49, through Saturday
WEEK = "2026-W49"
# Sunday 10:00 in Shanghai: the form is open until Monday 00:00 there (16:00 UTC).
SUNDAY_MORNING = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
REV = TargetMetric.REVENUE_FEN


@dataclass(frozen=True)
class Region:
    region_id: int
    name: str
    manager_id: int
    manager_name: str
    branch_name: str


@dataclass(frozen=True)
class Week:
    north: Region
    south: Region
    snapshot_id: int


def make_regions(engine: Engine, *, locale: str = "zh-CN") -> tuple[Region, Region]:
    """North: a 2.3M-fen December target (its station's and its own), 900,000 done by
    Saturday (4 of 23 working days: pro-rated 400,000, pace 225 %); south: no target, 50,000
    done."""
    regions = []
    with session_scope(engine) as session:
        for fen, target in ((900_000, 2_300_000), (50_000, None)):
            org = make_org(session)
            org.region_manager.locale = locale
            customer = make_customer(session, org, card_type=CardType.COMPANY)
            session.add(
                Transaction(
                    customer_id=customer.id,
                    branch_id=org.branch.id,
                    kind=TransactionKind.PURCHASE,
                    amount_fen=fen,
                    volume_ml=fen // 7,
                    occurred_on=date(2026, 12, 2),
                )
            )
            if target is not None:
                conn = session.connection()
                version = create_version(conn, now=SUNDAY_MORNING, created_by="test", source="test")
                write_values(
                    conn,
                    version,
                    [
                        TargetValue(("2026-12", TargetScope.BRANCH, org.branch.id, REV), target),
                        TargetValue(("2026-12", TargetScope.REGION, org.region.id, REV), target),
                    ],
                )
            regions.append(
                Region(
                    org.region.id,
                    org.region.name,
                    org.region_manager.id,
                    org.region_manager.name,
                    org.branch.name,
                )
            )
    return regions[0], regions[1]


def make_week(engine: Engine, *, as_of: date = SUNDAY, locale: str = "zh-CN") -> Week:
    """``make_regions`` and Sunday's weekly snapshot of them."""
    north, south = make_regions(engine, locale=locale)
    result = compute(engine, RunKind.WEEKLY, as_of, SHANGHAI)
    snapshot = write_snapshot(engine, result, as_of, None, {"kind": "weekly"})
    return Week(north, south, snapshot.id)


def form_token(region: Region, key: bytes, *, week: str = WEEK) -> str:
    return weekly_form_token(
        region.region_id,
        staff_id=region.manager_id,
        week=week,
        key=key,
        expires_at=closes_at(WEEK, SHANGHAI),  # an expiry for any label, even a bad one
    )


def form_url(region: Region, key: bytes, base_url: str) -> str:
    return weekly_form_url(
        region.region_id,
        staff_id=region.manager_id,
        week=WEEK,
        key=key,
        base_url=base_url,
        expires_at=closes_at(WEEK, SHANGHAI),
    )


def forms(engine: Engine) -> list[WeeklyForm]:
    with session_scope(engine) as session:
        rows = session.scalars(select(WeeklyForm).order_by(WeeklyForm.id)).all()
        session.expunge_all()
        return list(rows)


def form_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(WeeklyForm)) or 0
