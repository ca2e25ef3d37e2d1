"""120 days of the surveys flow over a small demo company (issue #17), random answers (seeded).

Each day runs the flow's own steps in the flow's order - ``load_inputs``, the follow-ups
(expiry, reminders), every customer id range's invitations, the detractor loop, the scores:
the bodies of the flow's Prefect tasks (``.fn``), without one Prefect flow run per day (too
slow for 120 days), with the run ledger's row written as the flow's bracket writes it, at the
simulated instant. Then customers answer some open invitations through the answer page's own
recording (``record_link_form``: random scores, ratings and comments, a few marked as a
complaint), and a few complaints are resolved, so post-complaint surveys fall due.

Invariants, checked every day: every invitation of the day respects the contact cap (no other
customer-facing email of that customer within ``contact.cap_days``) and the 90-day fatigue
window (no other survey invitation within 90 days); re-running a day (every third one, and the
last) writes nothing (every table's row count unchanged); at the end every answer that triggers
the loop (a detractor, a CSAT of 1-2, a rating of 1-2) has exactly one care alert with its one
urgent revisit (none for a customer without a class yet), and no other answer has one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, TextClause, bindparam, func, select, text, update

from crm_core.settings import reset_settings_cache
from crm_db.demo import DEMO_AS_OF, SeedOptions, seed_demo
from crm_db.enums import ComplaintStatus, EventSource, InvitationStatus, RunStatus, SurveyKind
from crm_db.models import (
    CareAlert,
    Complaint,
    Customer,
    FlowRun,
    Revisit,
    SurveyInvitation,
    SurveyResponse,
)
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import UTCDateTime
from tasks.care_alerts.rules import URGENT_REASON, survey_trigger
from tasks.classification.classify import classify_all
from tasks.common.policies import contact_cap_days
from tasks.complaints.lifecycle import apply_event
from tasks.complaints.rules.lifecycle import Transition
from tasks.surveys.answers import Outcome, record_link_form
from tasks.surveys.prefect_tasks import (
    invite_survey_range,
    load_inputs,
    survey_alerts,
    survey_follow_ups,
    survey_scores,
)
from tasks.surveys.rules.answers import Answer, Submission

DAYS = 120
START = datetime.combine(DEMO_AS_OF, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
CUSTOMERS = 60
SEED = 20261123
RANGE_SIZE = 1_000  # the flow's minimum: the demo's ids fit one or two ranges
# Every third day is re-run (each re-run is a whole second run: all of them would double the
# test's time for little more: the days differ in what falls due, not in how it is written).
RERUN_EVERY = 3
ANSWER_SHARE = 0.35  # of the open invitations, answered on a given day
COMMENTS = ("油价能不能便宜点", "服务很好", "<b>发票</b>开得太慢", "", "加油站排队太久")
# The tables a surveys run writes (a re-run must not add a row to any of them).
WRITTEN = (
    "survey_campaigns",
    "survey_invitations",
    "survey_responses",
    "survey_scores",
    "email_outbox",
    "care_alerts",
    "revisits",
    "complaints",
    "complaint_events",
)


@pytest.fixture
def demo(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The demo company, small, as ``crm demo seed`` writes it; the flow's shared engine on it."""
    seed_demo(sqlite_engine, SeedOptions(customers=CUSTOMERS))
    # Classified, as the daily classification flow leaves it: the waves go by class.
    classify_all(sqlite_engine, as_of=DEMO_AS_OF, now=START, run_id=None, dry_run=False)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield sqlite_engine
    dispose_shared_engines()
    reset_settings_cache()


def _run_day(engine: Engine, day: date, now: datetime) -> None:
    """One surveys run: the ledger row at ``now``, then the flow's steps in its order."""
    with session_scope(engine) as session:
        run = FlowRun(
            flow_name="surveys",
            as_of=day,
            dry_run=False,
            parameters={},
            status=RunStatus.RUNNING,
            counts={},
            started_at=now,
        )
        session.add(run)
        session.flush()
        run_id = run.id
    inputs = load_inputs(day, now, RANGE_SIZE, dry_run=False)
    survey_follow_ups.fn(inputs.context, run_id, False)
    for lo, hi in inputs.ranges:
        invite_survey_range.fn(inputs.context, lo, hi, run_id, False)
    survey_alerts.fn(day, now, run_id, False)
    survey_scores.fn(day, now, run_id, False)
    with session_scope(engine) as session:
        session.execute(
            update(FlowRun)
            .where(FlowRun.id == run_id)
            .values(status=RunStatus.COMPLETED, finished_at=now + timedelta(minutes=5))
        )


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in WRITTEN}


def _answer_some(engine: Engine, rng: random.Random, at: datetime) -> None:
    """Customers answer a random share of the open invitations, as the answer page records."""
    with engine.connect() as conn:
        open_ids = conn.execute(
            select(SurveyInvitation.id)
            .where(
                SurveyInvitation.status.in_([InvitationStatus.SENT, InvitationStatus.REMINDED]),
                SurveyInvitation.expires_at > at,
            )
            .order_by(SurveyInvitation.id)
        ).scalars()
        chosen = [i for i in open_ids if rng.random() < ANSWER_SHARE]
    for invitation_id in chosen:
        low = rng.random()

        def parse(invitation: object, low: float = low) -> Submission:
            kind = invitation.kind
            score = rng.randint(0, 10) if kind is SurveyKind.NPS else rng.randint(1, 5)
            rating = (lambda: rng.choice([None, 1, 2, 3, 4, 5])) if low < 0.5 else lambda: None
            comment = rng.choice(COMMENTS) or None
            answer = Answer(score, rating(), rating(), comment)
            return Submission(answer, comment is not None and score <= 3 and rng.random() < 0.3)

        result = record_link_form(engine, invitation_id, parse, now=at)
        assert not isinstance(result, list) and result.outcome is Outcome.RECORDED


def _resolve_some(engine: Engine, rng: random.Random, at: datetime) -> None:
    """A few of the open complaints are handled today (their post-complaint survey follows)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Complaint.id, Complaint.status).where(
                Complaint.status.in_(
                    [ComplaintStatus.NEW, ComplaintStatus.ACKNOWLEDGED, ComplaintStatus.IN_PROGRESS]
                )
            )
        ).all()
    for complaint_id, status in rows:
        if rng.random() < 0.3:
            steps = [Transition.ACK] if status is ComplaintStatus.NEW else []
            for n, step in enumerate([*steps, Transition.RESOLVE]):
                with session_scope(engine) as session:
                    apply_event(
                        session,
                        complaint_id,
                        step,
                        at + timedelta(minutes=n),
                        None,
                        EventSource.CLI,
                    )


def _moments(sql: str) -> TextClause:
    """``sql`` with its instants bound as the columns store them (naive UTC text on SQLite)."""
    names = [n for n in ("now", "cap_from", "fatigue_from") if f":{n}" in sql]
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in names))


def _check_caps(engine: Engine, now: datetime, cap_days: int) -> int:
    """The day's invitations: none within the cap of another email, none within 90 days of
    another survey, one email each. Returns how many there were."""
    params = {
        "now": now,
        "cap_from": now - timedelta(days=cap_days),
        "fatigue_from": now - timedelta(days=90),
    }
    with engine.connect() as conn:
        invited = conn.execute(
            _moments("SELECT customer_id FROM survey_invitations WHERE created_at = :now"), params
        ).scalars()
        invited = list(invited)
        capped = conn.execute(
            _moments(
                "SELECT i.customer_id FROM survey_invitations i JOIN email_outbox e "
                "ON e.customer_id = i.customer_id WHERE i.created_at = :now "
                "AND e.created_at > :cap_from AND e.created_at < :now "
                "AND e.status NOT IN ('failed', 'suppressed')"
            ),
            params,
        ).all()
        fatigued = conn.execute(
            _moments(
                "SELECT i.customer_id FROM survey_invitations i JOIN survey_invitations o "
                "ON o.customer_id = i.customer_id AND o.id <> i.id WHERE i.created_at = :now "
                "AND o.created_at > :fatigue_from AND o.created_at <= :now"
            ),
            params,
        ).all()
        emails = conn.execute(
            _moments(
                "SELECT count(*) FROM email_outbox WHERE created_at = :now "
                "AND kind = 'survey_invitation'"
            ),
            params,
        ).scalar_one()
    assert capped == [], f"{now}: invited within the contact cap"
    assert fatigued == [], f"{now}: invited within the 90-day fatigue window"
    assert emails == len(invited) == len(set(invited))
    return len(invited)


def test_120_days_keep_every_cap_and_follow_up_every_detractor_once(demo: Engine) -> None:
    engine = demo
    rng = random.Random(SEED)
    with session_scope(engine) as session:
        cap_days = contact_cap_days(session)
    invited = reruns_checked = 0
    first_now = START
    for offset in range(DAYS):
        day = DEMO_AS_OF + timedelta(days=offset)
        now = first_now + timedelta(days=offset)  # 09:00 in Shanghai, the deployment's hour
        _run_day(engine, day, now)
        invited += _check_caps(engine, now, cap_days)
        if offset % RERUN_EVERY == 0 or offset == DAYS - 1:
            # Re-running the day (a retry, a manual re-run) writes nothing.
            before = _counts(engine)
            _run_day(engine, day, now + timedelta(minutes=30))
            assert _counts(engine) == before, f"{day}: the re-run wrote rows"
            reruns_checked += 1
        _answer_some(engine, rng, now + timedelta(hours=3))
        _resolve_some(engine, rng, now + timedelta(hours=6))
    # The last day's answers go through one more run.
    end = first_now + timedelta(days=DAYS)
    _run_day(engine, DEMO_AS_OF + timedelta(days=DAYS), end)

    with session_scope(engine) as session:
        answers = session.execute(
            select(
                SurveyResponse.id,
                SurveyResponse.score,
                SurveyResponse.product_rating,
                SurveyResponse.service_rating,
                SurveyInvitation.kind,
                SurveyInvitation.customer_id,
            )
            .join(SurveyInvitation, SurveyInvitation.id == SurveyResponse.invitation_id)
            .where(SurveyResponse.recorded_at >= first_now)
        ).all()
        alerts = session.execute(
            select(CareAlert.key, CareAlert.revisit_id, Customer.abc_class).join(
                Customer, Customer.id == CareAlert.customer_id
            )
        ).all()
        urgent = dict(
            session.execute(
                select(Revisit.id, Revisit.reason).where(
                    Revisit.id.in_([a.revisit_id for a in alerts if a.revisit_id])
                )
            ).all()
        )
        csat_sent = session.scalar(
            select(func.count())
            .select_from(SurveyInvitation)
            .where(
                SurveyInvitation.kind == SurveyKind.CSAT, SurveyInvitation.created_at >= first_now
            )
        )
        survey_complaints = session.scalar(
            select(func.count()).select_from(Complaint).where(Complaint.source_ref.like("survey:%"))
        )
    expected = set()
    for rid, score, product, service, kind, customer_id in answers:
        nps = kind is SurveyKind.NPS
        trigger = survey_trigger(
            response_id=rid,
            customer_id=customer_id,
            abc_class=None,
            nps=score if nps else None,
            csat=None if nps else score,
            product_rating=product,
            service_rating=service,
            comment=None,
        )
        if trigger is not None:
            expected.add(f"survey:response:{rid}")
    raised = [a.key for a in alerts if a.key.startswith("survey:response:")]
    # Exactly one alert per triggering answer, none for the others; each its urgent revisit,
    # but for a customer the classification has not reached yet (no class: no revisit cadence).
    assert sorted(raised) == sorted(expected)
    followed = [a for a in alerts if a.key in expected and a.abc_class is not None]
    assert followed and all(urgent.get(a.revisit_id) == URGENT_REASON for a in followed)
    assert all(a.revisit_id is None for a in alerts if a.abc_class is None)
    # The simulation exercised what it claims to: waves over two periods, answers, detractors,
    # post-complaint surveys, complaints from marked comments, and every day re-run.
    assert invited > CUSTOMERS // 2 and len(answers) > 20 and len(expected) > 5
    assert csat_sent and survey_complaints
    assert reruns_checked == DAYS // RERUN_EVERY + 1
