"""Sixty days of a small company's complaints with random lifecycles (seeded): every complaint
ends handled, every breach is escalated exactly once, and the monthly report's figures equal a
plain-SQL recomputation.

Fast by construction: no Prefect (the check's IO, ``run_check``, is called directly), and a
check runs only at the 15-minute instants where something is due - the earliest
``next_check_at`` rounded up to the grid, or an intake without an owner - never at the idle
ones, which would do nothing. Lifecycle events happen 7 minutes past a grid instant, each in its
own slot, so a check never coincides with one.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, func, select, text

from crm_db.defaults import ensure_default_policies
from crm_db.enums import EventSource, Severity, StaffRole
from crm_db.models import Complaint, ComplaintEscalation
from crm_db.session import session_factory, session_scope
from crm_db.types import UTCDateTime
from tasks.common.directory import load_directory
from tasks.complaints.checks import run_check
from tasks.complaints.feedback_report import Scope, control_counts
from tasks.complaints.lifecycle import Intake, apply_event, open_complaint
from tasks.complaints.policies import complaint_hours
from tasks.complaints.rules.feedback_report import month_bounds
from tasks.complaints.rules.lifecycle import Transition
from tasks.rules.business_time import business_minutes_between
from tests.factories import make_customer, make_org, make_staff

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
DAYS = 60
SLOT = timedelta(minutes=15)
OFFSET = timedelta(minutes=7)  # events happen between checks
SEED = 20261001
CUSTOMERS = 300
PER_DAY = 2.0  # complaints received per day, on average


@dataclass(frozen=True)
class Step:
    at: datetime
    key: str
    transition: Transition | None  # None: the intake


def _ceil(at: datetime) -> datetime:
    slots = -(-(at - START) // SLOT)
    return START + SLOT * slots


def _plan(rng: random.Random) -> tuple[list[dict[str, object]], list[Step]]:
    """Each complaint's intake and lifecycle, at distinct slots (+7 minutes), in order."""
    intakes: list[dict[str, object]] = []
    steps: list[Step] = []
    n = 0
    for day in range(DAYS):
        for _ in range(sum(rng.random() < PER_DAY / 4 for _ in range(4))):
            n += 1
            key = f"SIM{n:04d}"
            slot = day * 96 + rng.randrange(96)
            intakes.append(
                {
                    "key": key,
                    "slot": slot,
                    "severity": rng.choice(list(Severity)),
                    "category": rng.choice(["油品质量", "充值到账", "服务态度", "发票"]),
                    "assigned": rng.random() < 0.85,
                    "customer": rng.randrange(CUSTOMERS),
                }
            )
            steps.append(Step(START + SLOT * slot + OFFSET, key, None))
            life = [Transition.ACK]
            if rng.random() < 0.25:
                life += [Transition.WAIT, Transition.RESUME]
            life.append(Transition.RESOLVE)
            if rng.random() < 0.2:
                life += [Transition.REOPEN, Transition.RESOLVE]
            life += [Transition.VERIFY, Transition.CLOSE]
            for transition in life:
                # First responses from 15 minutes to 36 hours (some breach the 24 h), the rest
                # from 15 minutes to 3 days apart.
                slot += rng.randint(1, 144 if transition is Transition.ACK else 288)
                steps.append(Step(START + SLOT * slot + OFFSET, key, transition))
    steps.sort(key=lambda s: s.at)
    return intakes, steps


def test_sixty_days_of_complaints(sqlite_engine: Engine) -> None:
    engine = sqlite_engine
    rng = random.Random(SEED)
    intakes, steps = _plan(rng)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=START)
        orgs = [make_org(session) for _ in range(3)]
        make_staff(session, StaffRole.EXECUTIVE)
        make_staff(session, StaffRole.PRODUCT_DEPARTMENT)
        customers = [make_customer(session, orgs[i % 3]) for i in range(CUSTOMERS)]
        people = [(c.id, c.branch_id, c.account_manager_id) for c in customers]
        # The staff do not change in this simulation: the check reuses one directory.
        directory = load_directory(session.connection())
    by_key = {str(i["key"]): i for i in intakes}
    ids: dict[str, int] = {}
    factory = session_factory(engine)
    checks = 0
    last_check = START - SLOT
    unassigned: set[datetime] = set()
    i = 0
    while True:
        with session_scope(engine) as session:
            due = session.scalar(select(func.min(Complaint.next_check_at)))
        candidates = ([_ceil(due)] if due is not None else []) + sorted(unassigned)[:1]
        check_at = max(min(candidates), last_check + SLOT) if candidates else None
        event = steps[i] if i < len(steps) else None
        if check_at is None and event is None:
            break
        if check_at is not None and (event is None or check_at < event.at):
            session = factory()
            try:
                outcome = run_check(session, check_at, directory=directory)
            finally:
                session.close()
            assert outcome.unassignable == 0 and outcome.unnotified == 0
            checks += 1
            last_check = check_at
            unassigned = {at for at in unassigned if at > check_at}
            continue
        assert event is not None
        with session_scope(engine) as session:
            if event.transition is None:
                spec = by_key[event.key]
                customer_id, branch_id, manager_id = people[int(str(spec["customer"]))]
                complaint = open_complaint(
                    session,
                    Intake(
                        event.key,
                        customer_id,
                        branch_id,
                        str(spec["category"]),
                        Severity(str(spec["severity"])),
                        event.at,
                        assignee_id=manager_id if spec["assigned"] else None,
                    ),
                    recorded_at=event.at,
                )
                ids[event.key] = complaint.id
                if not spec["assigned"]:
                    unassigned.add(_ceil(event.at))
            else:
                apply_event(
                    session,
                    ids[event.key],
                    event.transition,
                    event.at,
                    None,
                    EventSource.CLI,
                    recorded_at=event.at,
                )
        i += 1

    assert len(ids) > 80 and checks > 50
    with session_scope(engine) as session:
        complaints = list(session.scalars(select(Complaint).order_by(Complaint.id)))
        # Every complaint handled: closed, with an owner.
        assert Counter(str(c.status) for c in complaints) == Counter({"closed": len(ids)})
        assert all(c.assignee_id is not None for c in complaints)
        tiers = Counter(
            (cid, str(target), str(tier))
            for cid, target, tier in session.execute(
                select(
                    ComplaintEscalation.complaint_id,
                    ComplaintEscalation.target,
                    ComplaintEscalation.tier,
                )
            ).tuples()
        )
        assert set(tiers.values()) <= {1}
        breaches = {(c, t) for (c, t, tier) in tiers if tier == "assignee"}
        # Every breach, worked out from the final rows alone: the 15-minute check before the
        # clock stopped for good (7 minutes before that event) found the target passed.
        expected = set()
        for c in complaints:
            assert c.acknowledged_at is not None and c.resolved_at is not None
            assert c.first_response_due_at is not None and c.resolution_minutes is not None
            if c.first_response_due_at <= c.acknowledged_at - OFFSET:
                expected.add((c.id, "first_response"))
            hours = complaint_hours(session, c.calendar_id)
            before_stop = c.resolved_at - OFFSET
            elapsed = business_minutes_between(c.received_at, before_stop, hours)
            if elapsed - c.paused_business_minutes >= c.resolution_minutes:
                expected.add((c.id, "resolution"))
        assert expected, "the seed should produce breaches"
        assert breaches == expected

        # The report's figures for October equal a plain-SQL recomputation.
        month = month_bounds("2026-10", SH)
        counts = control_counts(session.connection(), month, Scope())
        params = {"start": month.start, "end": month.end}
        plain = {
            name: session.execute(
                text(sql).bindparams(
                    *(bindparam(k, type_=UTCDateTime()) for k in params if f":{k}" in sql)
                ),
                {k: v for k, v in params.items() if f":{k}" in sql},
            ).scalar_one()
            for name, sql in _PLAIN_SQL.items()
        }
    assert counts.customers == plain["customers"] == CUSTOMERS
    assert (counts.received, counts.omitted) == (plain["received"], plain["omitted"])
    assert (counts.reopened, counts.resolved) == (plain["reopened"], plain["resolved"])
    assert counts.resolved_on_time == plain["resolved_on_time"]
    assert counts.received > 30 and counts.omitted > 0


_PLAIN_SQL = {
    "customers": "SELECT count(*) FROM customers",
    "received": """
        SELECT count(*) FROM complaints WHERE received_at >= :start AND received_at < :end""",
    "omitted": """
        SELECT count(*) FROM complaints
        WHERE received_at >= :start AND received_at < :end AND first_response_due_at IS NOT NULL
          AND (acknowledged_at > first_response_due_at
               OR (acknowledged_at IS NULL AND first_response_due_at < :end))""",
    "reopened": """
        SELECT count(DISTINCT complaint_id) FROM complaint_events
        WHERE kind = 'transition' AND to_status = 'in_progress'
          AND from_status IN ('resolved', 'verified', 'closed')
          AND at >= :start AND at < :end""",
    "resolved": """
        SELECT count(*) FROM complaints WHERE resolved_at >= :start AND resolved_at < :end""",
    "resolved_on_time": """
        SELECT count(*) FROM complaints
        WHERE resolved_at >= :start AND resolved_at < :end AND resolved_at <= resolution_due_at""",
}
