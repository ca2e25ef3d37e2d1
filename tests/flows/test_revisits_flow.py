"""The classify_customers and revisits flows end to end: real Prefect runs on a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from sqlalchemy import Engine, func, select

import flows.revisits
from crm_core.settings import reset_settings_cache
from crm_db.enums import (
    AbcClass,
    ContactChannel,
    ContactOutcome,
    OutboxStatus,
    RevisitStatus,
    RunStatus,
    StaffRole,
)
from crm_db.models import ContactHistory, FlowRun, OutboxMessage, PolicySetting, Revisit
from crm_db.session import dispose_shared_engines, session_scope
from crm_db.types import utcnow
from flows.classify_customers import classify_customers
from flows.revisits import revisits
from tasks.revisits import prefect_tasks as revisit_tasks
from tasks.revisits.prefect_tasks import plan_revisits_range
from tests.factories import (
    make_customer,
    make_org,
    make_purchase,
    make_staff,
    queue_earlier_care_email,
)

AS_OF = date(2026, 11, 23)
PINNED = {"abc_pinned": True, "abc_pinned_reason": "test: keep the class through classification"}


@pytest.fixture
def crm_db(
    engine: Engine, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """The flows read CRM_DATABASE_URL: point it at this test's (SQLite or PostgreSQL) database."""
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", "test-secret-key-0123456789abcdef0123")
    reset_settings_cache()
    yield engine
    dispose_shared_engines()


def _count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _seed(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "EAST")
        for i in range(6):
            customer = make_customer(session, org)
            make_purchase(session, customer, (i + 1) ** 3 * 10_000, date(2026, 9, 1))
        # Bad data the run must survive and report.
        # Neither a branch nor a manager: nobody to assign.
        make_customer(
            session, org, abc_class=AbcClass.A, branch_id=None, account_manager_id=None, **PINNED
        )
        quiet = make_org(session, "WEST")
        quiet.account_manager.email = None  # a manager without email
        make_customer(session, quiet, abc_class=AbcClass.B, **PINNED)
        a = make_staff(session, StaffRole.BRANCH_MANAGER)
        b = make_staff(session, StaffRole.REGION_MANAGER, manager_id=a.id)
        a.manager_id = b.id  # a cyclic management chain
        looped = make_customer(
            session, quiet, abc_class=AbcClass.A, account_manager_id=a.id, **PINNED
        )
        session.add(
            ContactHistory(
                customer_id=looped.id,
                channel=ContactChannel.VISIT,
                outcome=ContactOutcome.COMPLETED,
                occurred_at=datetime(2026, 9, 1, tzinfo=UTC),
            )
        )


def test_classify_then_plan_revisits(crm_db: Engine) -> None:
    _seed(crm_db)
    classified = classify_customers(as_of=AS_OF)
    assert classified["counts"]["customers"] == 9 and classified["counts"]["class_A"] >= 1

    dry = revisits(as_of=AS_OF, dry_run=True)
    assert dry["counts"]["created"] > 0 and dry["ledger_run_id"] is None
    assert _count(crm_db, Revisit) == 0 and _count(crm_db, OutboxMessage) == 0

    first = revisits(as_of=AS_OF)
    counts = first["counts"]
    assert counts["created"] == _count(crm_db, Revisit) > 0
    assert counts["skipped_no_branch"] == 1
    assert counts["digest_skipped_manager_without_email"] >= 1
    assert counts["digests"] >= 1 and counts["care_emails"] >= 1
    assert counts["staff_in_manager_cycle"] == 2 and "cyclic" in first["warnings"][0]
    queued = _count(crm_db, OutboxMessage)
    assert queued == counts["digests"] + counts["care_emails"]

    with session_scope(crm_db) as session:
        ledger = session.get(FlowRun, first["ledger_run_id"])
        assert ledger is not None and ledger.status is RunStatus.COMPLETED
        assert ledger.counts["created"] == counts["created"]
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts(limit=50)
        keys = {a.key for a in artifact}
    assert "revisits-summary" in keys

    again = revisits(as_of=AS_OF)
    assert again["counts"].get("created", 0) == 0
    assert _count(crm_db, Revisit) == counts["created"]
    assert _count(crm_db, OutboxMessage) == queued
    # The re-run's counts are rows it wrote: no digest written, each one counted as queued.
    assert again["counts"].get("digests", 0) == 0
    assert again["counts"]["digests_already_queued"] == counts["digests"]


def test_a_range_that_fails_fails_the_run_with_its_reason(
    crm_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad data met while planning a range: the run fails naming the problem, the ledger says
    failed, and nothing of the range is written."""
    _seed(crm_db)
    classify_customers(as_of=AS_OF)

    class BadRecord(Exception):
        def __init__(self, record: str, field: str) -> None:
            super().__init__(f"{record}: {field} is not a locale")

    def broken(*args: object, **kwargs: object) -> None:
        raise BadRecord("customer 3", "locale")

    monkeypatch.setattr(revisit_tasks, "plan_range", broken)
    no_retries = plan_revisits_range.with_options(retries=0)
    monkeypatch.setattr(flows.revisits, "plan_range_task", no_retries)
    state = revisits(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    with pytest.raises(BadRecord, match="customer 3: locale is not a locale"):
        state.result()
    assert _count(crm_db, Revisit) == 0
    with session_scope(crm_db) as session:
        ledger = session.scalars(select(FlowRun).where(FlowRun.flow_name == "revisits")).one()
        assert ledger.status is RunStatus.FAILED


def test_a_care_email_deferred_by_the_contact_cap_goes_out_on_a_later_run(
    crm_db: Engine,
) -> None:
    """Planning counts why it could not email a new revisit; a later day's run sends it from the
    follow-ups that run beside planning (escalating it first, as it is overdue by then)."""
    with session_scope(crm_db) as session:
        org = make_org(session, "EAST")
        capped = make_customer(session, org, abc_class=AbcClass.C, **PINNED)
        # The cap counts from the run's clock (now), not from as_of: 3 days ago is within it.
        queue_earlier_care_email(session, capped, utcnow() - timedelta(days=3))
        capped_id = capped.id

    first = revisits(as_of=AS_OF)["counts"]
    assert (first["created"], first.get("care_emails", 0)) == (1, 0)
    assert first["care_skipped_contact_cap"] == 1
    with session_scope(crm_db) as session:
        revisit = session.scalars(select(Revisit)).one()
        assert revisit.customer_id == capped_id and revisit.status is RevisitStatus.OPEN
        # A week passes for the cap: the earlier email is now 9 days old.
        earlier = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == "earlier:care")
        ).one()
        earlier.created_at -= timedelta(days=6)

    later = revisits(as_of=date(2026, 12, 2))["counts"]  # cap over, revisit 7 working days late
    assert later.get("created", 0) == 0
    assert later["care_emails"] == 1 and later["escalated_branch"] == 1
    with session_scope(crm_db) as session:
        revisit = session.scalars(select(Revisit)).one()
        # Queued, not done: waiting for the relay.
        assert revisit.status is RevisitStatus.OPEN and revisit.outcome == "email_queued"
        assert revisit.escalation_level == 1
        care = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("revisit_care:%"))
        ).one()
        assert care.idempotency_key == f"revisit_care:2026-12-02:customer:{capped_id}"
        # The relay accepts it (delivery's settlement; the SMTP path: test_care_delivery.py).
        sent_at = utcnow()
        care.status, care.sent_at = OutboxStatus.SENT, sent_at
    again = revisits(as_of=date(2026, 12, 2))["counts"]
    assert again.get("care_emails", 0) == 0 and again.get("escalated_branch", 0) == 0
    assert again["care_delivered"] == 1
    with session_scope(crm_db) as session:
        revisit = session.scalars(select(Revisit)).one()
        assert revisit.status is RevisitStatus.DONE and revisit.outcome == "email_sent"
        assert revisit.completed_at == sent_at


def test_a_leavers_customers_go_to_the_branch_manager_in_the_run(crm_db: Engine) -> None:
    """The run's first step hands a leaver's customers (and open revisits) to the branch
    manager, audited with the run's ledger id; the digest goes to the branch manager and lists
    them; nothing is queued for the leaver; a re-run hands over nothing twice."""
    from crm_db.models import CustomerOwnerChange

    with session_scope(crm_db) as session:
        org = make_org(session, "EAST")
        customers = [make_customer(session, org, abc_class=AbcClass.B, **PINNED) for _ in range(2)]
        org.account_manager.active = False
        org.account_manager.left_on = AS_OF
        leaver, boss = org.account_manager.id, org.branch_manager.id
        ids = sorted(c.id for c in customers)

    first = revisits(as_of=AS_OF)
    assert first["counts"]["reassigned"] == 2 and first["counts"]["digests"] == 1
    with session_scope(crm_db) as session:
        audit = session.scalars(select(CustomerOwnerChange)).all()
        assert sorted((a.customer_id, a.from_staff_id, a.to_staff_id) for a in audit) == [
            (cid, leaver, boss) for cid in ids
        ]
        assert {(a.source, a.run_id) for a in audit} == {("leaver", first["ledger_run_id"])}
        revisits_ = session.scalars(select(Revisit)).all()
        assert {r.assignee_id for r in revisits_} == {boss}
        assert not any(r.needs_reassignment for r in revisits_)
        mails = session.scalars(select(OutboxMessage)).all()
        assert [m.staff_id for m in mails] == [boss]
        assert sorted(h["customer_id"] for h in mails[0].context["reassigned"]) == ids
    again = revisits(as_of=AS_OF)["counts"]
    assert again.get("reassigned", 0) == 0 and again.get("digests", 0) == 0


def test_a_backlog_is_spread_within_capacity_and_shown_per_manager(crm_db: Engine) -> None:
    with session_scope(crm_db) as session:
        session.add_all(
            [
                PolicySetting(key="revisit.capacity.visits_per_day", value=2),
                PolicySetting(key="revisit.capacity.window_working_days", value=2),
            ]
        )
        org = make_org(session, "EAST")
        for _ in range(5):  # never contacted, customers for years: all due at once
            make_customer(session, org, abc_class=AbcClass.A, **PINNED)
    summary = revisits(as_of=AS_OF)  # a Monday
    counts = summary["counts"]
    assert counts["created"] == 5
    # Two today, two tomorrow; the window (two working days) is full for the fifth, which goes
    # to the least-booked day of it (a tie: the first).
    assert counts["deferred"] == 2
    assert counts["over_capacity"] == 1
    assert any("over capacity" in w for w in summary["warnings"])
    with session_scope(crm_db) as session:
        days = sorted(session.scalars(select(Revisit.planned_for)))
    tuesday = AS_OF + timedelta(days=1)
    assert days == [AS_OF, AS_OF, AS_OF, tuesday, tuesday]
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["revisits-capacity"])),
            sort=ArtifactSort.CREATED_DESC,  # this run's (earlier tests publish under the key)
            limit=1,
        )
    table = artifact.data if isinstance(artifact.data, list) else json.loads(str(artifact.data))
    (row,) = table
    assert row["visit capacity"] == 2 and row["over capacity"] == 1
    assert row["visits today"] + row["planned later"] == 5
    with session_scope(crm_db) as session:
        (digest,) = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "revisit_digest")
        ).all()
    assert len(digest.context["items"]) == row["visits today"]
    assert digest.context["deferred"] == row["planned later"]
