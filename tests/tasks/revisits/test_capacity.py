"""Capacity planning against a real database: a first-day backlog spread over working days,
the digest lists today's share and says how many wait, escalation counts from the planned day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome
from crm_db.models import ContactHistory, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.revisits.capacity import capacity_rows, plan_batch_days
from tasks.revisits.emails import digest_batches, queue_digest_batch
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
from tasks.revisits.rules.capacity import Capacity
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org

MONDAY = date(2026, 11, 23)
SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(exceptions={date(2026, 11, 25): False})  # a Wednesday off
CAPACITY = Capacity(visits_per_day=2, calls_per_day=3, window_working_days=10)


def _ctx(engine: Engine, day: date) -> PlanningContext:
    return PlanningContext(
        as_of=day,
        now=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        timezone=SHANGHAI,
        calendar=CALENDAR,
        cadences=DEFAULT_CADENCES,
        capacity=CAPACITY,
        directory=load_directory(engine),
    )


def _link(revisit_id: int, staff_id: int) -> str:
    return f"https://crm.example.test/r/{revisit_id}"


def _run_day(engine: Engine, day: date) -> tuple[int, int]:
    """Planning, capacity, digests for ``day``; returns (deferred, over capacity)."""
    ctx = _ctx(engine, day)
    for lo, hi in customer_id_ranges(engine, 3):
        plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False)
    deferred = over = 0
    for assignees in digest_batches(engine, day):
        result = plan_batch_days(engine, ctx, assignees, dry_run=False)
        deferred += result.counts.total("deferred")
        over += result.counts.total("over_capacity")
        queue_digest_batch(engine, ctx, assignees, outcome_url=_link, run_id=None, dry_run=False)
    return deferred, over


def _backlog(engine: Engine) -> dict[int, int]:
    """One account manager with 5 A customers (visits) and 7 B customers (calls) due; each
    customer's last completed contact i days further back. Returns customer id -> days back."""
    back: dict[int, int] = {}
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        for i in range(12):
            abc = AbcClass.A if i < 5 else AbcClass.B
            customer = make_customer(session, org, abc_class=abc)
            days = 100 + (7 * i) % 12  # not in id order
            session.add(
                ContactHistory(
                    customer_id=customer.id,
                    channel=ContactChannel.VISIT,
                    outcome=ContactOutcome.COMPLETED,
                    occurred_at=datetime.combine(MONDAY, datetime.min.time(), tzinfo=UTC)
                    - timedelta(days=days),
                )
            )
            back[customer.id] = days
    return back


def _planned(engine: Engine) -> dict[int, Revisit]:
    with session_scope(engine) as session:
        rows = session.scalars(select(Revisit)).all()
        session.expunge_all()
        return {r.customer_id: r for r in rows}


def test_first_day_backlog_spreads_within_capacity(engine: Engine) -> None:
    back = _backlog(engine)
    deferred, over = _run_day(engine, MONDAY)
    revisits = _planned(engine)
    assert len(revisits) == 12 and over == 0
    per_day = Counter((r.channel, r.planned_for) for r in revisits.values())
    tuesday, thursday = date(2026, 11, 24), date(2026, 11, 26)
    assert per_day == {
        (ContactChannel.VISIT, MONDAY): 2,
        (ContactChannel.VISIT, tuesday): 2,
        (ContactChannel.VISIT, thursday): 1,  # Wednesday is off
        (ContactChannel.PHONE, MONDAY): 3,
        (ContactChannel.PHONE, tuesday): 3,
        (ContactChannel.PHONE, thursday): 1,
    }
    assert deferred == 12 - 5
    # Earliest-overdue first: within a kind, a longer wait since the last contact is planned
    # no later.
    for kind in (ContactChannel.VISIT, ContactChannel.PHONE):
        mine = sorted(
            (r for r in revisits.values() if r.channel is kind), key=lambda r: -back[r.customer_id]
        )
        days = [r.planned_for for r in mine]
        assert days == sorted(days)  # type: ignore[type-var]
    # The digest lists today's five and says seven wait, until Thursday.
    with session_scope(engine) as session:
        (digest,) = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "revisit_digest")
        ).all()
        assert len(digest.context["items"]) == 5
        assert digest.context["deferred"] == 7
        assert digest.context["deferred_until"] == thursday.isoformat()


def test_a_rerun_keeps_the_plan_and_the_next_day_books_on_top(engine: Engine) -> None:
    _backlog(engine)
    _run_day(engine, MONDAY)
    first = {cid: r.planned_for for cid, r in _planned(engine).items()}
    assert _run_day(engine, MONDAY) == (0, 0)
    assert {cid: r.planned_for for cid, r in _planned(engine).items()} == first
    # Tuesday: two more A customers fall due; Tuesday's two visit slots are taken, so they go
    # to Thursday (one slot left) and Friday.
    with session_scope(engine) as session:
        org = make_org(session, "WEST")
        # Same account manager as the backlog's, so the slots are shared.
        first_manager = session.scalars(select(Revisit.assignee_id)).first()
        for _ in range(2):
            make_customer(
                session,
                org,
                abc_class=AbcClass.A,
                account_manager_id=first_manager,
                first_card_on=date(2026, 10, 20),
            )
    tuesday = date(2026, 11, 24)
    assert _run_day(engine, tuesday) == (2, 0)
    new = [r for cid, r in _planned(engine).items() if cid not in first]
    assert sorted(r.planned_for for r in new) == [date(2026, 11, 26), date(2026, 11, 27)]  # type: ignore[type-var]


def test_escalation_counts_from_the_planned_day(engine: Engine) -> None:
    _backlog(engine)
    _run_day(engine, MONDAY)
    revisits = _planned(engine)
    # Eight days later: the ones planned for Monday are 8 days past their day (escalated), the
    # ones planned for Tuesday 7 (escalated), Thursday's 5 (not yet) - all share due_on Monday.
    day = MONDAY + timedelta(days=8)
    counts = escalate_overdue(
        engine, _ctx(engine, day), outcome_url=_link, run_id=None, dry_run=False
    )
    after = _planned(engine)
    escalated = {cid for cid, r in after.items() if r.branch_escalated_at is not None}
    expected = {
        cid
        for cid, r in revisits.items()
        if r.planned_for is not None and (day - r.planned_for).days >= 7
    }
    assert escalated == expected
    assert 0 < len(escalated) < len(revisits)
    assert counts.total("escalated:branch") == len(expected)
    assert {r.due_on for r in revisits.values()} == {MONDAY}


def test_capacity_rows_show_today_later_and_capacity(engine: Engine) -> None:
    _backlog(engine)
    ctx = _ctx(engine, MONDAY)
    for lo, hi in customer_id_ranges(engine, 50):
        plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False)
    (assignees,) = digest_batches(engine, MONDAY)
    dry = plan_batch_days(engine, ctx, assignees, dry_run=True)
    assert {r.planned_for for r in _planned(engine).values()} == {None}  # nothing written
    result = plan_batch_days(engine, ctx, assignees, dry_run=False)
    assert dry.counts.totals() == result.counts.totals() == {"deferred": 7}
    (row,) = capacity_rows(result.managers, ctx.capacity, ctx.directory.staff)
    assert row["visits today"] == 2 and row["calls today"] == 3
    assert (row["visit capacity"], row["call capacity"]) == (2, 3)
    assert row["planned later"] == 7 and row["deferred (this run)"] == 7
    assert row["planned until"] == "2026-11-26"
    assert row["over capacity"] == 0
