"""Sixty days of the revisit cycle against a real database, checked against an oracle each day;
and sixty working days of the demo company within the account managers' daily capacity.

Each simulated day runs escalation, planning, care emails and digests for that date, then the
managers complete a random half of what is open. Invariants: never two open revisits for one
customer; a revisit is created exactly on the first day a customer falls due (no misses, no
extras, weekends respected); every overdue revisit is escalated once per tier, never twice.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select, text, update

from crm_db.demo import DEMO_AS_OF, SeedOptions, seed_demo
from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Customer, OutboxMessage, Revisit
from crm_db.session import session_scope
from crm_db.types import raw_date, raw_utc_datetime
from tasks.classification.classify import classify_all
from tasks.common.calendars import load_work_calendar
from tasks.common.directory import load_directory
from tasks.common.policies import contact_cap_days
from tasks.revisits import policies as revisit_policies
from tasks.revisits.capacity import plan_batch_days
from tasks.revisits.completion import REACHED, record_outcome
from tasks.revisits.emails import (
    digest_batches,
    queue_care_emails,
    queue_digest_batch,
    queue_digests,
)
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
from tasks.revisits.rules.capacity import window_days
from tasks.revisits.rules.planning import Cadence, natural_due, planning_cutoff
from tasks.rules.calendar import WorkCalendar
from tests.factories import deliver_care_emails, make_customer, make_org

START = date(2026, 8, 29)  # a Saturday: the first day's backlog lands on a weekend
DAYS = 60
SHANGHAI = ZoneInfo("Asia/Shanghai")
CADENCES = {
    AbcClass.A: Cadence(AbcClass.A, 3, ContactChannel.VISIT, 7),
    AbcClass.B: Cadence(AbcClass.B, 5, ContactChannel.PHONE, 7),
    AbcClass.C: Cadence(AbcClass.C, 8, ContactChannel.EMAIL, 7),
}
CALENDAR = WorkCalendar(exceptions={date(2026, 10, d): False for d in range(1, 8)})


def _link(revisit_id: int, staff_id: int) -> str:
    return f"https://crm.example.test/r/{revisit_id}"


def _ctx(engine: Engine, day: date) -> PlanningContext:
    return PlanningContext(
        as_of=day,
        now=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        timezone=SHANGHAI,
        calendar=CALENDAR,
        cadences=CADENCES,
        directory=load_directory(engine),
    )


def _expected_new(engine: Engine, ctx: PlanningContext) -> set[int]:
    """Oracle: customers with no open revisit whose natural due date has reached the cut-off."""
    expected = set()
    with session_scope(engine) as session:
        open_ids = set(
            session.scalars(select(Revisit.customer_id).where(Revisit.status == RevisitStatus.OPEN))
        )
        last = dict(
            session.execute(
                select(ContactHistory.customer_id, func.max(ContactHistory.occurred_at))
                .where(ContactHistory.outcome.in_([o.value for o in REACHED]))
                .group_by(ContactHistory.customer_id)
            )
            .tuples()
            .all()
        )
        for customer in session.scalars(select(Customer)):
            if customer.id in open_ids or customer.abc_class is None:
                continue
            reached = last.get(customer.id)
            if isinstance(reached, str):
                reached = datetime.fromisoformat(reached).replace(tzinfo=UTC)
            natural = natural_due(
                last_completed=reached.astimezone(SHANGHAI).date() if reached else None,
                customer_since=customer.first_card_on,
                cadence_days=CADENCES[customer.abc_class].cadence_days,
            )
            if natural <= planning_cutoff(ctx.as_of, CALENDAR):
                expected.add(customer.id)
    return expected


def test_sixty_days(engine: Engine) -> None:
    rng = random.Random(20261123)
    with session_scope(engine) as session:
        org = make_org(session)
        classes = [AbcClass.A, AbcClass.B, AbcClass.C]
        for i in range(36):
            make_customer(
                session,
                org,
                abc_class=classes[i % 3],
                first_card_on=START - timedelta(days=rng.randint(0, 10)),
            )
    created_on: dict[int, list[date]] = {}
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        ctx = _ctx(engine, day)
        expected = _expected_new(engine, ctx)
        escalate_overdue(
            engine,
            ctx,
            outcome_url=_link,
            run_id=None,
            dry_run=False,
        )
        with session_scope(engine) as session:
            before = set(session.scalars(select(Revisit.id)))
        for lo, hi in customer_id_ranges(engine, 10):
            plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False)
        queue_care_emails(engine, ctx, cap_days=2, run_id=None, dry_run=False)
        # The relay accepts the day's care emails: that completes their revisits.
        deliver_care_emails(engine, ctx.now)
        queue_digests(
            engine,
            ctx,
            outcome_url=_link,
            run_id=None,
            dry_run=False,
        )
        with session_scope(engine) as session:
            new = list(session.scalars(select(Revisit).where(Revisit.id.not_in(before))))
            assert {r.customer_id for r in new} == expected, f"planning on {day}"
            for revisit in new:
                assert revisit.due_on == CALENDAR.next_working_day(day), f"due date on {day}"
                created_on.setdefault(revisit.customer_id, []).append(day)
            open_per_customer = Counter(
                session.scalars(
                    select(Revisit.customer_id).where(Revisit.status == RevisitStatus.OPEN)
                )
            )
            assert max(open_per_customer.values(), default=0) <= 1
            for revisit in session.scalars(
                select(Revisit).where(Revisit.status == RevisitStatus.OPEN)
            ):
                days_late = (day - revisit.due_on).days
                assert revisit.escalation_level == (
                    2 if days_late >= 14 else 1 if days_late >= 7 else 0
                )
            # Managers complete about half of what is open, some with no answer (stays open).
            for revisit in session.scalars(
                select(Revisit).where(Revisit.status == RevisitStatus.OPEN, Revisit.due_on <= day)
            ):
                if rng.random() < 0.5:
                    outcome = rng.choice([ContactOutcome.COMPLETED, ContactOutcome.NO_ANSWER])
                    record_outcome(session, revisit.id, outcome, now=ctx.now + timedelta(hours=3))
    # Every customer went round the cycle several times.
    assert min(len(days) for days in created_on.values()) >= 3
    # Each (revisit, tier) appears in exactly one escalation email over the whole run.
    with session_scope(engine) as session:
        mails = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "revisit_escalation")
        ).all()
        tiers = Counter(
            (int(re.sub(r"\D", "", item["outcome_url"])), mail.context["level"])
            for mail in mails
            for item in mail.context["items"]
        )
        escalated = session.scalar(
            select(func.count()).select_from(Revisit).where(Revisit.escalation_level > 0)
        )
    assert tiers and max(tiers.values()) == 1
    assert escalated and len({rid for rid, _ in tiers}) == escalated
    with session_scope(engine) as session:
        keys = session.scalars(select(OutboxMessage.idempotency_key)).all()
    assert len(keys) == len(set(keys))


# The demo company as `make demo` seeds it, and 60 working days of the daily cycle with the
# default capacity policies (8 visits and 30 calls per account manager and working day).
DEMO_CUSTOMERS = 20_000
DEMO_WORKING_DAYS = 60

_OVER_CAPACITY = text(
    """
    SELECT assignee_id, channel, planned_for, COUNT(*) FROM revisits
    WHERE planned_for IS NOT NULL AND channel = :channel
    GROUP BY assignee_id, channel, planned_for HAVING COUNT(*) > :cap
    """
)
# Each revisit with the customer's last completed contact before it was created: when the
# customer fell due by cadence.
_PLANNED_REVISITS = text(
    """
    SELECT v.id, v.abc_class, v.channel, v.due_on, v.planned_for, c.first_card_on,
           v.branch_escalated_at,
           (SELECT MAX(h.occurred_at) FROM contact_history h
            WHERE h.customer_id = v.customer_id AND h.outcome IN ('completed', 'issue_raised')
              AND h.occurred_at < v.created_at) AS last_completed
    FROM revisits v JOIN customers c ON c.id = v.customer_id
    """
)
_TODAYS_WORK = text(
    "SELECT id, customer_id, assignee_id, channel FROM revisits "
    "WHERE status = 'open' AND COALESCE(planned_for, due_on) <= :day ORDER BY id"
)


def _complete_most(engine: Engine, day: date, now: datetime) -> None:
    """The managers do about nine in ten of the revisits planned for today or earlier (the
    rest stay open and escalate): one completed contact each, in SQL."""
    with engine.begin() as conn:
        work = [
            r for r in conn.execute(_TODAYS_WORK, {"day": day}) if (r.id * 7 + day.toordinal()) % 10
        ]
        if not work:
            return
        conn.execute(
            insert(ContactHistory),
            [
                {
                    "customer_id": r.customer_id,
                    "staff_id": r.assignee_id,
                    "channel": r.channel,
                    "outcome": ContactOutcome.COMPLETED.value,
                    "occurred_at": now,
                    "revisit_id": r.id,
                }
                for r in work
            ],
        )
        conn.execute(
            update(Revisit)
            .where(Revisit.id.in_([r.id for r in work]))
            .values(status=RevisitStatus.DONE, outcome="completed", completed_at=now)
        )


def test_sixty_working_days_of_the_demo_company_stay_within_capacity(engine: Engine) -> None:
    seed_demo(engine, SeedOptions(customers=DEMO_CUSTOMERS))
    classify_all(
        engine, as_of=DEMO_AS_OF, now=datetime(2026, 11, 23, tzinfo=UTC), run_id=None, dry_run=False
    )
    with session_scope(engine) as session:
        calendar = load_work_calendar(session)
        cadences = revisit_policies.cadences(session)
        capacity = revisit_policies.capacity(session)
        cap_days = contact_cap_days(session)
    assert (capacity.visits_per_day, capacity.calls_per_day) == (8, 30)  # the defaults
    day, working, first_day_deferred = DEMO_AS_OF, 0, None
    while working < DEMO_WORKING_DAYS:
        now = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
        ctx = PlanningContext(
            as_of=day,
            now=now,
            timezone=SHANGHAI,
            calendar=calendar,
            cadences=cadences,
            capacity=capacity,
            directory=load_directory(engine),
        )
        escalate_overdue(engine, ctx, outcome_url=_link, run_id=None, dry_run=False)
        for lo, hi in customer_id_ranges(engine, 5_000):
            plan_range(engine, ctx, lo, hi, run_id=None, dry_run=False, care_cap_days=cap_days)
        queue_care_emails(
            engine, ctx, cap_days=cap_days, run_id=None, dry_run=False, created_before=now
        )
        deferred = over = 0
        for assignees in digest_batches(engine, day, batches=4):
            result = plan_batch_days(engine, ctx, assignees, dry_run=False)
            deferred += result.counts.total("deferred")
            over += result.counts.total("over_capacity")
            queue_digest_batch(
                engine, ctx, assignees, outcome_url=_link, run_id=None, dry_run=False
            )
        assert over == 0, f"planned over capacity on {day}"
        if first_day_deferred is None:
            first_day_deferred = deferred
        if calendar.is_working_day(day):
            working += 1
            _complete_most(engine, day, now + timedelta(hours=3))
        day += timedelta(days=1)
    # Day one had a backlog, and it was spread rather than handed out at once.
    assert first_day_deferred and first_day_deferred > 1_000
    with engine.connect() as conn:
        for channel, cap in ((ContactChannel.VISIT, 8), (ContactChannel.PHONE, 30)):
            over_days = conn.execute(_OVER_CAPACITY, {"channel": channel.value, "cap": cap}).all()
            assert over_days == [], f"{channel.value}: over capacity"
        rows = conn.execute(_PLANNED_REVISITS).all()
    windows: dict[date, date] = {}
    planned = 0
    for row in rows:
        if row.channel not in (ContactChannel.VISIT.value, ContactChannel.PHONE.value):
            continue
        assert row.planned_for is not None, f"revisit {row.id} was never planned"
        planned_for, due_on = raw_date(row.planned_for), raw_date(row.due_on)
        last = raw_utc_datetime(row.last_completed)
        natural = natural_due(
            last_completed=last.astimezone(SHANGHAI).date() if last else None,
            customer_since=raw_date(row.first_card_on),
            cadence_days=cadences[AbcClass(row.abc_class)].cadence_days,
        )
        # Within its cadence plus the spreading window (from the first run for the backlog).
        start = calendar.next_working_day(max(natural, DEMO_AS_OF))
        if start not in windows:
            windows[start] = window_days(start, calendar, capacity.window_working_days)[-1]
        assert due_on <= planned_for <= windows[start], f"revisit {row.id}"
        assert calendar.is_working_day(planned_for)
        # Escalated only a full overdue period after the day it was planned for.
        escalated = raw_utc_datetime(row.branch_escalated_at)
        if escalated is not None:
            overdue = cadences[AbcClass(row.abc_class)].overdue_after_days
            assert (escalated.astimezone(SHANGHAI).date() - planned_for).days >= overdue
        planned += 1
    assert planned > 5_000
