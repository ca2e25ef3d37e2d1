"""Claimed tiers grouped into one email per recipient."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tasks.complaints.rules.escalation import due_tiers
from tasks.complaints.rules.notices import Claimed, escalation_key, group_by_recipient
from tasks.rules.escalation_ladder import Org, Person, Posts
from tests.tasks.complaints.rules.test_escalation import ORG, POSTS, RECEIVED, _clock


def test_one_batch_per_recipient_in_complaint_and_ladder_order() -> None:
    now = RECEIVED + timedelta(hours=40)
    claimed = [
        Claimed(cid, due) for cid in (7, 3) for due in due_tiers(_clock(), set(), now, POSTS, ORG)
    ]
    batches = group_by_recipient(claimed)
    assert sorted(batches.by_recipient) == [1, 2, 3]
    assignee = [(c.complaint_id, c.due.tier) for c in batches.by_recipient[1]]
    assert assignee == [(3, "warning"), (3, "assignee"), (7, "warning"), (7, "assignee")]
    assert batches.unnotified == []


def test_tiers_nobody_can_receive_are_kept_apart() -> None:
    nobody = Org({1: Person(1, False, True)}, ())
    due = due_tiers(_clock(), set(), RECEIVED + timedelta(hours=20), Posts(assignee_id=1), nobody)
    batches = group_by_recipient(Claimed(5, d) for d in due)
    assert batches.by_recipient == {} and [c.due.tier for c in batches.unnotified] == ["warning"]


def test_the_key_names_the_check_instant_in_utc_and_the_recipient() -> None:
    at = datetime(2026, 11, 23, 17, 15, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert escalation_key(at, 42) == "complaint_escalation:2026-11-23T09:15:00:staff:42"
    assert escalation_key(at.astimezone(UTC), 42) == escalation_key(at, 42)


def test_urgent_first_puts_the_highest_tier_then_the_latest_first() -> None:
    from tasks.complaints.rules.notices import urgent_first

    later = due_tiers(_clock(), set(), RECEIVED + timedelta(hours=40), POSTS, ORG)
    early = due_tiers(_clock(), set(), RECEIVED + timedelta(hours=20), POSTS, ORG)
    claimed = [Claimed(1, d) for d in early] + [Claimed(2, d) for d in later]
    ordered = urgent_first(reversed(claimed))
    assert [c.complaint_id for c in ordered] == [2] * len(later) + [1] * len(early)
    tiers = [
        c.due.tier for c in ordered if c.complaint_id == 2 and c.due.target == "first_response"
    ]
    assert tiers == sorted(
        tiers, key=["warning", "assignee", "branch", "region", "executive"].index
    )
