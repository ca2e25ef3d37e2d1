from __future__ import annotations

import pickle
from typing import Any

from sqlalchemy import Engine, event

from crm_db.enums import StaffRole
from crm_db.session import session_scope
from tasks.common.directory import load_directory
from tasks.rules.escalation_ladder import RecipientKind, Tier, resolve
from tests.factories import make_org, make_staff


def test_directory_loads_in_two_reads_and_answers_the_org_questions(engine: Engine) -> None:
    with session_scope(engine) as session:
        org = make_org(session, "NORTH")
        boss = make_staff(session, StaffRole.EXECUTIVE)
        gone_boss = make_staff(session, StaffRole.EXECUTIVE, active=False)
        org.region_manager.manager_id = boss.id
        org.account_manager.email = "not-an-address"
        bad = make_staff(session, StaffRole.ACCOUNT_MANAGER, email_undeliverable=True)
        ids = (org.account_manager.id, org.branch_manager.id, org.region_manager.id, boss.id)
        branch_id, region_id, bad_id, gone_id = org.branch.id, org.region.id, bad.id, gone_boss.id
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        directory = load_directory(engine)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2
    account, branch_manager, region_manager, executive = ids
    assert directory.branch_manager(branch_id) == branch_manager
    assert directory.region_of(branch_id) == region_id
    assert directory.region_manager(region_id) == region_manager
    assert directory.senior_management == (executive,)  # the inactive one is not
    assert directory.reporting_chain(account) == [branch_manager, region_manager, executive]
    # Addresses as the outbox would accept them: malformed or undeliverable count as none.
    assert directory.staff[account].email is None and directory.staff[bad_id].email is None
    assert directory.staff[branch_manager].reachable
    assert not directory.staff[gone_id].reachable
    # Frozen and picklable: planning ships it to worker processes.
    assert pickle.loads(pickle.dumps(directory)) == directory


def test_owner_is_the_account_manager_or_the_branch_manager_when_they_left(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        left = make_staff(session, StaffRole.ACCOUNT_MANAGER, branch_id=org.branch.id, active=False)
        account, branch_manager, left_id = org.account_manager.id, org.branch_manager.id, left.id
        branch_id = org.branch.id
    directory = load_directory(engine)
    here = directory.owner(account, branch_id)
    assert (here.assignee_id, here.needs_reassignment) == (account, False)
    moved = directory.owner(left_id, branch_id)
    assert (moved.assignee_id, moved.needs_reassignment) == (branch_manager, True)
    assert directory.owner(left_id, None).skip is not None


def test_ladder_view_skips_inactive_managers_and_ends_broken_chains_at_the_top(
    engine: Engine,
) -> None:
    with session_scope(engine) as session:
        org = make_org(session)
        boss = make_staff(session, StaffRole.EXECUTIVE)
        org.branch_manager.active = False
        org.region_manager.active = False
        org.region_manager.manager_id = org.branch_manager.id  # a cycle, both inactive
        account, branch_id, boss_id = org.account_manager.id, org.branch.id, boss.id
        branch_manager = org.branch_manager.id
    directory = load_directory(engine)
    notice = resolve(
        Tier("branch", RecipientKind.BRANCH_MANAGER, fraction=1.0),
        directory.posts(account, branch_id),
        directory.org(),
    )
    assert notice.recipient_id == boss_id
    assert notice.reason == f"cycle at staff {branch_manager}"
