"""The churn check across id ranges, on SQLite and PostgreSQL: each range's alerts and revisits
commit with it, and one email per recipient lists the whole run's alerts; alerts a failed run
left unnotified go out with the next run's emails."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from crm_db.enums import AbcClass
from crm_db.models import CareAlert, OutboxMessage, Revisit
from crm_db.session import session_scope
from tasks.care_alerts.alerts import AlertCounts
from tasks.care_alerts.churn import check_churn_range, churn_triggers, notify_pending
from tasks.care_alerts.rules import AlertPolicy
from tasks.common.directory import load_directory
from tests.factories import make_customer, make_org, make_purchase

MONDAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")


def test_ranges_commit_alone_and_one_email_per_recipient_lists_the_run(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        ids = []
        for _ in range(3):
            customer = make_customer(session, org, abc_class=AbcClass.B)
            make_purchase(session, customer, 90_000, MONDAY - timedelta(days=100))
            make_purchase(session, customer, 10_000, MONDAY - timedelta(days=10))
            ids.append(customer.id)
        am = org.account_manager.id
    policy = AlertPolicy()
    directory = load_directory(engine)
    triggers, _ = churn_triggers(engine, min(ids), max(ids), as_of=MONDAY, policy=policy)
    assert [(t.customer_id, t.recent_fen, t.previous_fen) for t in triggers] == [
        (i, 10_000, 90_000) for i in ids
    ]

    def check(lo: int, hi: int, dry_run: bool = False) -> AlertCounts:
        return check_churn_range(
            engine, lo, hi, as_of=MONDAY, now=NOW, timezone=TZ, directory=directory,
            policy=policy, run_id=None, dry_run=dry_run,
        )  # fmt: skip

    def notify() -> int:
        return notify_pending(
            engine, as_of=MONDAY, now=NOW, timezone=TZ, directory=directory, policy=policy,
            run_id=None,
        )  # fmt: skip

    first = check(ids[0], ids[0])
    rest = check(ids[1], ids[2])
    assert (sum(first.alerts.values()), sum(rest.alerts.values())) == (1, 2)
    assert (first.revisits_created, rest.revisits_created) == (1, 2)
    with session_scope(engine) as session:  # written, not yet told
        assert session.scalars(select(OutboxMessage)).all() == []
        assert set(session.scalars(select(CareAlert.notified_at))) == {None}
    assert notify() == 1
    assert notify() == 0  # nothing left to tell
    with session_scope(engine) as session:
        [email] = session.scalars(select(OutboxMessage)).all()
        assert email.staff_id == am and email.kind == "care_alert"
        assert [i["recent_yuan"] for i in email.context["items"]] == [100.0, 100.0, 100.0]
        assert (email.context["total_count"], email.context["more_count"]) == (3, 0)
        assert None not in set(session.scalars(select(CareAlert.notified_at)))
        assert len(session.scalars(select(Revisit)).all()) == 3
    dry = check(ids[0], ids[2], dry_run=True)
    assert sum(dry.alerts.values()) == 0 and dry.skipped["duplicate"] == 3


def test_a_long_list_is_cut_with_a_count(engine: Engine) -> None:
    from tasks.care_alerts.alerts import MAX_EMAIL_ITEMS

    with session_scope(engine) as session:
        org = make_org(session)
        for _ in range(MAX_EMAIL_ITEMS + 2):
            customer = make_customer(session, org)  # unclassified: alerts only, fast
            make_purchase(session, customer, 90_000, MONDAY - timedelta(days=100))
    directory = load_directory(engine)
    policy = AlertPolicy()
    check_churn_range(
        engine, 1, 10**9, as_of=MONDAY, now=NOW, timezone=TZ, directory=directory,
        policy=policy, run_id=None, dry_run=False,
    )  # fmt: skip
    notify_pending(
        engine, as_of=MONDAY, now=NOW, timezone=TZ, directory=directory, policy=policy,
        run_id=None,
    )  # fmt: skip
    with session_scope(engine) as session:
        [email] = session.scalars(select(OutboxMessage)).all()
        context = email.context
    assert len(context["items"]) == MAX_EMAIL_ITEMS
    assert (context["total_count"], context["more_count"]) == (MAX_EMAIL_ITEMS + 2, 2)
