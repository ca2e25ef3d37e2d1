"""Staff who leave: their customers and open revisits go to the branch manager, each change
audited; nothing more goes to them; the branch manager's digest lists what was handed over;
``crm customer reassign`` and the import reassign deliberately. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db.enums import AbcClass, ContactChannel, RevisitStatus, StaffRole
from crm_db.models import Customer, CustomerOwnerChange, OutboxMessage, Revisit, Staff
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.common.owners import OwnerChangeError, reassignment
from tasks.mail.render import render_email
from tasks.revisits.emails import queue_digests
from tasks.revisits.escalation import escalate_overdue
from tasks.revisits.leavers import hand_over_leavers
from tasks.revisits.planning import PlanningContext
from tasks.revisits.rules.planning import DEFAULT_CADENCES
from tasks.rules.calendar import WorkCalendar
from tests.factories import make_customer, make_org, make_staff

MONDAY = date(2026, 11, 23)


def _ctx(engine: Engine, as_of: date) -> PlanningContext:
    return PlanningContext(
        as_of=as_of,
        now=datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1),
        timezone=ZoneInfo("Asia/Shanghai"),
        calendar=WorkCalendar(),
        cadences=DEFAULT_CADENCES,
        directory=load_directory(engine),
    )


def _link(revisit_id: int, staff_id: int) -> str:
    return f"https://crm.example.test/r/{revisit_id}/{staff_id}"


def _open_revisit(session, customer: Customer, assignee: int, due_on: date) -> Revisit:  # type: ignore[no-untyped-def]
    revisit = Revisit(
        customer_id=customer.id,
        assignee_id=assignee,
        abc_class=AbcClass.B,
        channel=ContactChannel.PHONE,
        due_on=due_on,
        status=RevisitStatus.OPEN,
        needs_reassignment=True,
    )
    session.add(revisit)
    session.flush()
    return revisit


def test_a_leavers_customers_and_open_revisits_go_to_the_branch_manager(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        leaver = org.account_manager
        stays = make_staff(session, StaffRole.ACCOUNT_MANAGER, branch_id=org.branch.id)
        theirs = [make_customer(session, org, abc_class=AbcClass.B) for _ in range(3)]
        kept = make_customer(session, org, abc_class=AbcClass.B, account_manager_id=stays.id)
        # Overdue (escalates), and a second one due today.
        late = _open_revisit(session, theirs[0], leaver.id, MONDAY - timedelta(days=8))
        _open_revisit(session, theirs[1], leaver.id, MONDAY)
        leaver.active, leaver.left_on = False, MONDAY - timedelta(days=1)
        ids = {
            "leaver": leaver.id,
            "branch_manager": org.branch_manager.id,
            "stays": stays.id,
            "theirs": [c.id for c in theirs],
            "kept": kept.id,
            "late": late.id,
        }
        leaver_name = leaver.name
        org_region = org.region.code
    ctx = _ctx(engine, MONDAY)

    dry = hand_over_leavers(engine, ctx, run_id=None, dry_run=True)
    assert dry.total("reassigned") == 3
    with session_scope(engine) as session:
        assert session.scalars(select(CustomerOwnerChange)).all() == []

    counts = hand_over_leavers(engine, ctx, run_id=7, dry_run=False)
    assert counts.total("reassigned") == 3 and counts.total("reassign_stranded") == 0
    # Counted under the customers' region, as the artifact's other columns are.
    assert counts.by_region[org_region]["reassigned"] == 3 and "-" not in counts.by_region
    with session_scope(engine) as session:
        owners = {c.id: c.account_manager_id for c in session.scalars(select(Customer))}
        assert owners == {
            **dict.fromkeys(ids["theirs"], ids["branch_manager"]),
            ids["kept"]: ids["stays"],
        }
        audit = session.scalars(select(CustomerOwnerChange).order_by(CustomerOwnerChange.id)).all()
        assert [(a.customer_id, a.from_staff_id, a.to_staff_id) for a in audit] == [
            (cid, ids["leaver"], ids["branch_manager"]) for cid in ids["theirs"]
        ]
        assert {(a.source, a.run_id, a.changed_at) for a in audit} == {("leaver", 7, ctx.now)}
        revisits = session.scalars(
            select(Revisit).where(Revisit.status == RevisitStatus.OPEN)
        ).all()
        assert {r.assignee_id for r in revisits} == {ids["branch_manager"]}
        assert not any(r.needs_reassignment for r in revisits)
    # Nothing twice.
    assert not hand_over_leavers(engine, ctx, run_id=8, dry_run=False).by_region
    with session_scope(engine) as session:
        assert len(session.scalars(select(CustomerOwnerChange)).all()) == 3

    # The branch manager's digest lists the revisits and what was handed over; the leaver gets
    # no digest and no escalation.
    queue_digests(engine, ctx, outcome_url=_link, run_id=None, dry_run=False)
    escalate_overdue(engine, ctx, outcome_url=_link, run_id=None, dry_run=False)
    with session_scope(engine) as session:
        mails = session.scalars(select(OutboxMessage)).all()
        assert ids["leaver"] not in {m.staff_id for m in mails}
        leaver_email = session.get(Staff, ids["leaver"]).email  # type: ignore[union-attr]
        assert leaver_email not in {m.recipient_email for m in mails}
        digest = next(m for m in mails if m.kind == "revisit_digest")
        assert digest.staff_id == ids["branch_manager"]
        assert {
            int(re.findall(r"/r/(\d+)/(\d+)", i["outcome_url"])[0][1])
            for i in digest.context["items"]
        } == {ids["branch_manager"]}
        handed = digest.context["reassigned"]
        assert sorted(h["customer_id"] for h in handed) == sorted(ids["theirs"])
        assert {h["from_name"] for h in handed} == {leaver_name}
        rendered = render_email("revisit_digest", digest.locale, digest.context)
    assert "已转由您负责" in rendered.text and leaver_name in rendered.text
    assert "已转由您负责" in rendered.html


def test_open_work_of_a_leaver_with_nobody_to_take_it_is_reported_not_sent(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        customer = make_customer(session, org, abc_class=AbcClass.B)
        _open_revisit(session, customer, org.account_manager.id, MONDAY)
        org.account_manager.active = False
        org.branch_manager.active = False  # left too
        leaver = org.account_manager.id
    ctx = _ctx(engine, MONDAY)
    counts = hand_over_leavers(engine, ctx, run_id=None, dry_run=False)
    assert counts.total("reassigned") == 0 and counts.total("reassign_stranded") == 1
    digests = queue_digests(engine, ctx, outcome_url=_link, run_id=None, dry_run=False)
    assert digests.total("digests") == 0 and digests.total("digest_skipped:assignee_left") == 1
    with session_scope(engine) as session:
        assert session.scalars(select(OutboxMessage)).all() == []
        still = session.scalars(select(Customer)).one()
        assert still.account_manager_id == leaver


def test_reassignment_names_what_is_wrong(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        gone = make_staff(session, StaffRole.ACCOUNT_MANAGER, active=False)
        customer = make_customer(session, org).id
        gone_id = gone.id
    directory = load_directory(engine)
    with engine.connect() as conn:
        with pytest.raises(OwnerChangeError, match=f"staff {gone_id} .* has left"):
            reassignment(conn, directory, to_staff=gone_id, customer_ids=[customer])
        with pytest.raises(OwnerChangeError, match="customer 999999 does not exist"):
            reassignment(conn, directory, to_staff=org.branch_manager.id, customer_ids=[999999])
        with pytest.raises(OwnerChangeError, match="staff 888888 does not exist"):
            reassignment(conn, directory, to_staff=888888, customer_ids=[customer])


def test_crm_customer_reassign_one_and_all_of_a_leavers(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        new = make_staff(session, StaffRole.ACCOUNT_MANAGER, branch_id=org.branch.id)
        customers = [make_customer(session, org, abc_class=AbcClass.B) for _ in range(3)]
        revisit = _open_revisit(session, customers[0], org.account_manager.id, MONDAY)
        refs = {
            "old": org.account_manager.external_id,
            "new": new.external_id,
            "one": customers[0].external_id,
        }
        ids = {"old": org.account_manager.id, "new": new.id, "revisit": revisit.id}
        customer_ids = [c.id for c in customers]
    monkeypatch.setenv("CRM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    reset_settings_cache()
    from crm_cli.main import app

    runner = CliRunner()
    one = runner.invoke(app, ["customer", "reassign", refs["one"], "--to", refs["new"]])
    assert one.exit_code == 0, one.output
    assert "1 customer(s) reassigned" in one.output
    rest = runner.invoke(
        app,
        ["customer", "reassign", "--from", refs["old"], "--to", refs["new"], "--reason", "调岗"],
    )
    assert rest.exit_code == 0, rest.output
    assert "2 customer(s) reassigned" in rest.output
    again = runner.invoke(app, ["customer", "reassign", "--from", refs["old"], "--to", refs["new"]])
    assert again.exit_code == 0 and "0 customer(s)" in again.output
    bad = runner.invoke(app, ["customer", "reassign", "NOPE", "--to", refs["new"]])
    assert bad.exit_code == 1 and "customer 'NOPE' does not exist" in bad.output
    neither = runner.invoke(app, ["customer", "reassign", "--to", refs["new"]])
    assert neither.exit_code == 2
    with session_scope(engine) as session:
        owners = {c.id: c.account_manager_id for c in session.scalars(select(Customer))}
        assert owners == dict.fromkeys(customer_ids, ids["new"])
        audit = session.scalars(select(CustomerOwnerChange).order_by(CustomerOwnerChange.id)).all()
        assert [(a.customer_id, a.from_staff_id, a.to_staff_id, a.source) for a in audit] == [
            (cid, ids["old"], ids["new"], "cli") for cid in customer_ids
        ]
        assert [a.reason for a in audit][1:] == ["调岗", "调岗"]
        moved = session.get(Revisit, ids["revisit"])
        assert moved is not None and moved.assignee_id == ids["new"]
