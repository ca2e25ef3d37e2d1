"""The churn early warning end to end on the real Prefect harness, on SQLite and PostgreSQL: a
customer whose purchases fell by more than half gets one alert, one urgent revisit and one email
to the account manager (A class: the region manager too); a customer with an open complaint, one
whose spend held, and one with nothing before are left alone; re-running the day, and running the
next day, add nothing (at most once per customer per 90 days)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import ColumnElement, Engine, func, select

from crm_core.settings import reset_settings_cache
from crm_db.enums import AbcClass, CareAlertKind, RevisitStatus, Severity
from crm_db.models import CareAlert, FlowRun, OutboxMessage, Revisit
from crm_db.session import dispose_shared_engines, session_scope
from flows.churn_warning import churn_warning
from tasks.complaints.lifecycle import Intake, open_complaint
from tests.factories import add_sla_policies, make_customer, make_org, make_purchase
from tests.support.outbox_data import TEST_SECRET

pytestmark = pytest.mark.usefixtures("prefect_harness")

MONDAY = date(2026, 11, 23)
URGENT = date(2026, 11, 25)  # two working days later (no calendar rows: Monday to Friday)


@pytest.fixture
def crm(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CRM_SECRET_KEY", TEST_SECRET)
    reset_settings_cache()
    yield engine
    dispose_shared_engines()
    reset_settings_cache()


def _count(engine: Engine, model: type, *where: ColumnElement[bool]) -> int:
    with session_scope(engine) as session:
        found = session.scalar(select(func.count()).select_from(model).where(*where))
        return found or 0


def test_churn_warning_alerts_once_and_reruns_add_nothing(crm: Engine) -> None:
    engine = crm
    before, recent = MONDAY - timedelta(days=120), MONDAY - timedelta(days=20)
    with session_scope(engine) as session:
        org = make_org(session)
        falling = make_customer(session, org, abc_class=AbcClass.A)
        complaining = make_customer(session, org, abc_class=AbcClass.B)
        steady = make_customer(session, org, abc_class=AbcClass.B)
        new = make_customer(session, org, abc_class=AbcClass.C)
        for customer, then, now in (
            (falling, 100_000, 40_000),  # -60 %: churn
            (complaining, 100_000, 0),  # stopped, but a complaint is open
            (steady, 100_000, 60_000),  # -40 %: not more than half
            (new, 0, 50_000),  # nothing to fall from
        ):
            if then:
                make_purchase(session, customer, then, before)
            make_purchase(session, customer, now, recent)
        # Outside both windows: not counted.
        make_purchase(session, steady, 10_000_000, MONDAY - timedelta(days=200))
        add_sla_policies(session)
        received = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        open_complaint(
            session,
            Intake(
                "CP-CHURN-1", complaining.id, org.branch.id, "油品质量", Severity.NORMAL, received
            ),
        )
        falling_id = falling.id
        am, rm = org.account_manager.id, org.region_manager.id

    summary = churn_warning(as_of=MONDAY)
    counts = summary["counts"]
    assert counts["triggers_churn"] == 1 and counts["alerts"] == 1
    assert counts["revisits_created"] == 1 and counts["emails"] == 2  # A class: AM and RM
    assert counts["skipped_complaint_open"] == 1
    with session_scope(engine) as session:
        alert = session.scalars(select(CareAlert)).one()
        assert (alert.customer_id, alert.kind, alert.as_of) == (
            falling_id,
            CareAlertKind.CHURN,
            MONDAY,
        )
        revisit = session.get(Revisit, alert.revisit_id)
        assert revisit is not None
        assert (revisit.status, revisit.due_on, revisit.reason) == (
            RevisitStatus.OPEN,
            URGENT,
            "care_alert",
        )
        emails = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "care_alert"))
        by_staff = {e.staff_id: e.context for e in emails}
        assert set(by_staff) == {am, rm}
        [item] = by_staff[am]["items"]
        assert (item["kind"], item["recent_yuan"], item["previous_yuan"]) == ("churn", 400, 1000)
        ledger = session.scalars(select(FlowRun).where(FlowRun.flow_name == "churn_warning")).one()
        assert ledger.counts["alerts"] == 1

    again = churn_warning(as_of=MONDAY)["counts"]  # the same day again
    assert again["alerts"] == 0 and again["skipped_duplicate"] == 1
    tomorrow = churn_warning(as_of=MONDAY + timedelta(days=1))["counts"]
    assert tomorrow["alerts"] == 0 and tomorrow["skipped_churn_recent"] == 1
    assert _count(engine, CareAlert) == 1
    assert _count(engine, Revisit) == 1
    assert _count(engine, OutboxMessage, OutboxMessage.kind == "care_alert") == 2
