"""Actuals in SQL, on SQLite and PostgreSQL: exact sums credited to the home branch (or the
selling station) and to the owner on the transaction's date; new cards per card type; first
recharges of new cards; equal to an independent recomputation from the rows on random data."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from crm_db.enums import CardType, StaffRole, TargetMetric, TargetScope, TransactionKind
from crm_db.models import Branch, Customer, CustomerOwnerChange, Transaction
from tasks.targets.actuals import CreditPolicy, OwnerSpans, Window, load_actuals
from tasks.targets.reconciliation import load_organisation
from tasks.targets.rules.reconcile import Key, roll_up
from tests.factories import Org, make_customer, make_org, make_staff

ZONE = ZoneInfo("Asia/Shanghai")
NOV = Window(date(2026, 11, 1), date(2026, 11, 30), date(2026, 1, 1))
M = TargetMetric
B, R, S, C = TargetScope.BRANCH, TargetScope.REGION, TargetScope.STAFF, TargetScope.COMPANY


def _tx(
    session: Session,
    customer: Customer,
    kind: TransactionKind,
    fen: int,
    ml: int,
    on: date,
    branch_id: int | None = None,
) -> None:
    session.add(
        Transaction(
            customer_id=customer.id,
            branch_id=branch_id or customer.branch_id,
            kind=kind,
            amount_fen=fen,
            volume_ml=ml,
            occurred_on=on,
        )
    )


def _owner_change(session: Session, customer: Customer, to: int, local_day: date) -> None:
    at = datetime(local_day.year, local_day.month, local_day.day, 0, 30, tzinfo=ZONE)
    session.add(
        CustomerOwnerChange(
            customer_id=customer.id,
            from_staff_id=customer.account_manager_id,
            to_staff_id=to,
            changed_at=at.astimezone(UTC),
            source="cli",
            reason="test",
        )
    )
    customer.account_manager_id = to


def _totals(engine: Engine, window: Window, policy: CreditPolicy) -> dict[Key, int]:
    with engine.connect() as conn:
        org = load_organisation(conn)
        with OwnerSpans(conn, ZONE) as spans:
            groups = load_actuals(conn, window, spans, policy)
        conn.rollback()
    return roll_up(groups, org)


def test_actuals_credit_home_branch_and_owner_on_the_day(engine: Engine) -> None:
    with Session(engine) as session:
        org = make_org(session)
        other = Branch(code="X-B2", name="二号站", region_id=org.region.id)
        session.add(other)
        session.flush()
        am2 = make_staff(session, StaffRole.ACCOUNT_MANAGER, branch_id=org.branch.id)
        new_fleet = make_customer(
            session, org, card_type=CardType.FLEET, first_card_on=date(2026, 11, 3)
        )
        old = make_customer(session, org, first_card_on=date(2025, 5, 1))
        am1 = org.account_manager.id
        _tx(session, new_fleet, TransactionKind.RECHARGE, 50_000, 0, date(2026, 11, 3))
        _tx(session, new_fleet, TransactionKind.RECHARGE, 70_000, 0, date(2026, 11, 4))
        _tx(session, new_fleet, TransactionKind.PURCHASE, 30_001, 40_003, date(2026, 11, 5))
        _tx(session, old, TransactionKind.PURCHASE, 10_000, 13_000, date(2026, 11, 9))
        # At the other station, after the hand-over to am2 on the 10th (local date).
        _tx(session, old, TransactionKind.PURCHASE, 20_000, 26_000, date(2026, 11, 10), other.id)
        _tx(session, old, TransactionKind.PURCHASE, 99_999, 1, date(2026, 12, 1))  # outside
        session.flush()
        _owner_change(session, old, am2.id, date(2026, 11, 10))
        session.commit()
        home_branch, other_id, region = org.branch.id, other.id, org.region.id
        am2_id = am2.id

    home = _totals(engine, NOV, CreditPolicy.HOME)
    assert home[(B, home_branch, M.REVENUE_FEN)] == 60_001
    assert home[(B, home_branch, M.VOLUME_ML)] == 79_003
    assert home[(B, home_branch, M.RECHARGE_FEN)] == 120_000
    assert home[(B, home_branch, M.FIRST_RECHARGE_FEN)] == 50_000
    assert home[(B, home_branch, M.NEW_CUSTOMERS_FLEET)] == 1
    assert (B, home_branch, M.NEW_CUSTOMERS_PERSONAL) not in home
    assert home[(B, home_branch, M.NEW_CUSTOMER_VOLUME_ML)] == 40_003  # developed in 2026
    assert (B, other_id, M.REVENUE_FEN) not in home
    assert home[(S, am1, M.REVENUE_FEN)] == 40_001  # before the hand-over
    assert home[(S, am2_id, M.REVENUE_FEN)] == 20_000  # on and after its day
    assert home[(R, region, M.REVENUE_FEN)] == home[(C, 0, M.REVENUE_FEN)] == 60_001

    station = _totals(engine, NOV, CreditPolicy.STATION)
    assert station[(B, home_branch, M.REVENUE_FEN)] == 40_001
    assert station[(B, other_id, M.REVENUE_FEN)] == 20_000
    assert station[(B, home_branch, M.NEW_CUSTOMERS_FLEET)] == 1  # new cards stay at home
    assert station[(R, region, M.REVENUE_FEN)] == 60_001

    # The first recharge counts only once made: a window ending before it has none.
    early = Window(date(2026, 11, 1), date(2026, 11, 2), date(2026, 1, 1))
    assert (C, 0, M.FIRST_RECHARGE_FEN) not in _totals(engine, early, CreditPolicy.HOME)


def test_random_data_equals_an_independent_recomputation(engine: Engine) -> None:
    rng = random.Random(19)
    with Session(engine) as session:
        orgs: list[Org] = [make_org(session) for _ in range(3)]
        managers = [o.account_manager.id for o in orgs]
        customers = []
        for i in range(30):
            org = orgs[i % 3]
            customers.append(
                make_customer(
                    session,
                    org,
                    card_type=rng.choice(list(CardType)),
                    first_card_on=date(2026, 10, 1) + timedelta(days=rng.randrange(70)),
                    account_manager_id=rng.choice(managers),
                )
            )
        rows: list[tuple[int, TransactionKind, int, int, date]] = []
        for _ in range(300):
            customer = rng.choice(customers)
            kind = rng.choice(list(TransactionKind))
            fen = rng.randrange(1, 10**9)
            ml = rng.randrange(0, 10**7) if kind is TransactionKind.PURCHASE else 0
            on = date(2026, 10, 20) + timedelta(days=rng.randrange(50))
            _tx(session, customer, kind, fen, ml, on)
            rows.append((customer.id, kind, fen, ml, on))
        session.flush()
        # Six customers handed over during November: before the day the old owner, from it on
        # the new one (computed here, independently of the spans).
        handed: dict[int, tuple[int, int, date]] = {}
        for customer in rng.sample(customers, 6):
            old = int(customer.account_manager_id or 0)
            new = next(m for m in managers if m != old)
            day = date(2026, 11, 1) + timedelta(days=rng.randrange(30))
            _owner_change(session, customer, new, day)
            handed[customer.id] = (old, new, day)
        session.commit()
        owners = {c.id: int(c.account_manager_id or 0) for c in customers}
        home = {c.id: int(c.branch_id or 0) for c in customers}
        cards = {c.id: (c.card_type, c.first_card_on) for c in customers}

    def _owner(customer_id: int, day: date) -> int:
        if customer_id in handed:
            old, new, from_day = handed[customer_id]
            return old if day < from_day else new
        return owners[customer_id]

    expected: defaultdict[Key, int] = defaultdict(int)
    for customer_id, kind, fen, ml, on in rows:
        if not NOV.start <= on <= NOV.end:
            continue
        who = [(B, home[customer_id]), (S, _owner(customer_id, on)), (C, 0)]
        for scope, scope_id in who:
            if kind is TransactionKind.PURCHASE:
                expected[(scope, scope_id, M.REVENUE_FEN)] += fen
                expected[(scope, scope_id, M.VOLUME_ML)] += ml
                if cards[customer_id][1] >= NOV.year_start:
                    expected[(scope, scope_id, M.NEW_CUSTOMER_VOLUME_ML)] += ml
            else:
                expected[(scope, scope_id, M.RECHARGE_FEN)] += fen
    firsts: dict[int, tuple[date, int]] = {}
    for index, (customer_id, kind, _fen, _ml, on) in enumerate(rows):
        best = firsts.get(customer_id)
        if kind is TransactionKind.RECHARGE and (best is None or on < best[0]):
            firsts[customer_id] = (on, index)
    for customer_id, (card_type, first_card) in cards.items():
        if not NOV.start <= first_card <= NOV.end:
            continue
        metric = {
            CardType.PERSONAL: M.NEW_CUSTOMERS_PERSONAL,
            CardType.COMPANY: M.NEW_CUSTOMERS_COMPANY,
            CardType.FLEET: M.NEW_CUSTOMERS_FLEET,
        }[card_type]
        first = firsts.get(customer_id)
        for scope, scope_id in [
            (B, home[customer_id]),
            (S, _owner(customer_id, first_card)),
            (C, 0),
        ]:
            expected[(scope, scope_id, metric)] += 1
        if first is not None and first[0] <= NOV.end:
            for scope, scope_id in [
                (B, home[customer_id]),
                (S, _owner(customer_id, first[0])),
                (C, 0),
            ]:
                expected[(scope, scope_id, M.FIRST_RECHARGE_FEN)] += rows[first[1]][2]
    found = _totals(engine, NOV, CreditPolicy.HOME)
    assert {k: v for k, v in found.items() if k[0] is not TargetScope.REGION} == {
        k: v for k, v in expected.items() if v
    }
