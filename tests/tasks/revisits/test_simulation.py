"""Sixty days of the revisit cycle against a real database, checked against an oracle each day.

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

from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, ContactChannel, ContactOutcome, RevisitStatus
from crm_db.models import ContactHistory, Customer, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.revisits.completion import REACHED, record_outcome
from tasks.revisits.emails import queue_care_emails, queue_digests
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.planning import PlanningContext, customer_id_ranges, plan_range
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
