from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Revisit
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.revisits.planning import (
    PlanningContext,
    customer_id_ranges,
    id_ranges,
    plan_range,
)
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org, make_staff

MONDAY = date(2026, 11, 23)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _context(engine: Engine, as_of: date) -> PlanningContext:
    return PlanningContext(
        as_of=as_of,
        now=datetime.combine(as_of, datetime.min.time(), tzinfo=UTC),
        timezone=SHANGHAI,
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


def _contact(session, customer_id: int, when: datetime, outcome=ContactOutcome.COMPLETED) -> None:  # type: ignore[no-untyped-def]
    session.add(
        ContactHistory(
            customer_id=customer_id, channel=ContactChannel.VISIT, outcome=outcome, occurred_at=when
        )
    )


def _plan(engine: Engine, as_of: date, dry_run: bool = False):  # type: ignore[no-untyped-def]
    ctx = _context(engine, as_of)
    totals = None
    for lo, hi in customer_id_ranges(engine, 2):
        counts = plan_range(engine, ctx, lo, hi, run_id=None, dry_run=dry_run)
        if totals is None:
            totals = counts
        else:
            totals.merge(counts)
    assert totals is not None
    return totals


def _open(engine: Engine) -> dict[int, Revisit]:
    with session_scope(engine) as session:
        rows = session.scalars(select(Revisit).where(Revisit.status == RevisitStatus.OPEN))
        return {r.customer_id: r for r in rows}


def test_due_customers_get_one_revisit(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        due_a = make_customer(session, org, abc_class=AbcClass.A)
        _contact(session, due_a.id, datetime(2026, 10, 10, 3, tzinfo=UTC))  # 44 days ago
        _contact(session, due_a.id, datetime(2026, 11, 20, 3, tzinfo=UTC), ContactOutcome.NO_ANSWER)
        fresh_b = make_customer(session, org, abc_class=AbcClass.B)
        _contact(session, fresh_b.id, datetime(2026, 11, 13, 3, tzinfo=UTC))
        never_c = make_customer(session, org, abc_class=AbcClass.C, first_card_on=date(2020, 5, 1))
        new_c = make_customer(session, org, abc_class=AbcClass.C, first_card_on=date(2026, 11, 1))
        unclassified = make_customer(session, org)
        ids = (due_a.id, fresh_b.id, never_c.id, new_c.id, unclassified.id)
    counts = _plan(engine, MONDAY)
    opened = _open(engine)
    assert set(opened) == {ids[0], ids[2]}
    assert counts.by_region["EAST"]["created"] == 2
    assert opened[ids[0]].channel == ContactChannel.VISIT and opened[ids[0]].due_on == MONDAY
    assert opened[ids[2]].channel == ContactChannel.EMAIL
    # Same date again: nothing new.
    assert _plan(engine, MONDAY).total("created") == 0
    assert len(_open(engine)) == 2


def test_contact_date_is_local_business_date(engine: Engine) -> None:
    # 2026-10-24 23:30 UTC is 2026-10-25 07:30 in Shanghai: due 30 days later on 11-24, not 11-23.
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.A)
        _contact(session, customer.id, datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    assert _plan(engine, MONDAY).total("created") == 0
    assert _plan(engine, MONDAY + timedelta(days=1)).total("created") == 1


def test_left_manager_goes_to_branch_manager_and_orphans_are_reported(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "WEST")
        org.account_manager.active = False
        moved = make_customer(session, org, abc_class=AbcClass.A)
        orphan = make_customer(session, org, abc_class=AbcClass.A, branch_id=None)
        manager_left = make_staff(session, org.account_manager.role, active=False)
        no_one = make_customer(
            session, org, abc_class=AbcClass.B, branch_id=None, account_manager_id=manager_left.id
        )
        ids = (moved.id, orphan.id, no_one.id, org.branch_manager.id)
    counts = _plan(engine, MONDAY)
    opened = _open(engine)
    assert opened[ids[0]].assignee_id == ids[3] and opened[ids[0]].needs_reassignment
    assert ids[1] not in opened and ids[2] not in opened
    assert counts.by_region["-"]["skipped:no_branch"] == 2


def test_weekend_waits_for_monday_and_dry_run_writes_nothing(engine: Engine) -> None:
    saturday = date(2026, 11, 21)
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.A)
        _contact(session, customer.id, datetime(2026, 10, 22, 4, tzinfo=UTC))  # natural: Sat 11-21
    assert _plan(engine, saturday).total("due") == 0
    dry = _plan(engine, MONDAY, dry_run=True)
    assert dry.total("created") == 1 and _open(engine) == {}
    assert _plan(engine, MONDAY).total("created") == 1


def test_opted_out_customers_get_a_phone_revisit_once_per_cadence(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        opted = make_customer(session, org, abc_class=AbcClass.C, marketing_opt_out=True)
        unsub = make_customer(
            session, org, abc_class=AbcClass.C, unsubscribed_at=datetime(2026, 1, 1, tzinfo=UTC)
        )
        visit = make_customer(session, org, abc_class=AbcClass.A, marketing_opt_out=True)
        ids = (opted.id, unsub.id, visit.id)
    counts = _plan(engine, MONDAY)
    # A call in place of the email; a visit is not marketing mail (it stays a visit).
    assert set(_open(engine)) == set(ids)
    assert counts.total("skipped:opted_out") == 0
    assert counts.total("phone_instead:opted_out") == 2
    with session_scope(engine) as session:
        channels = {r.customer_id: r.channel for r in session.scalars(select(Revisit))}
    assert channels == {
        ids[0]: ContactChannel.PHONE,
        ids[1]: ContactChannel.PHONE,
        ids[2]: ContactChannel.VISIT,
    }
    # The next days they are not due again (their call is open): not "due, skipped" daily.
    for day in (MONDAY + timedelta(days=1), MONDAY + timedelta(days=2)):
        later = _plan(engine, day)
        assert later.total("due") == 0 and later.total("phone_instead:opted_out") == 0


def test_id_ranges_cover_every_id_once_with_staggered_first_ranges() -> None:
    assert id_ranges(1, 1000, 250, 1) == [(1, 250), (251, 500), (501, 750), (751, 1000)]
    # Two lanes: the first range is half a range, so the second lane's first range ends half a
    # range after it; the last range takes what is left.
    assert id_ranges(1, 1000, 250, 2) == [(1, 125), (126, 375), (376, 625), (626, 875), (876, 1000)]
    four = id_ranges(1, 1000, 400, 4)
    assert [hi - lo + 1 for lo, hi in four] == [100, 200, 300, 400]
    for lo, hi, size, lanes in [(1, 10, 3, 2), (7, 7, 5, 4), (1, 1000, 1, 3), (3, 98, 7, 3)]:
        ranges = id_ranges(lo, hi, size, lanes)
        covered = [i for a, b in ranges for i in range(a, b + 1)]
        assert covered == list(range(lo, hi + 1))
        assert all(b - a + 1 <= size for a, b in ranges)
    with pytest.raises(ValueError, match="positive"):
        id_ranges(1, 10, 0, 2)
