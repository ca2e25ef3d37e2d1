from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.rules.escalation_ladder import (
    Ladder,
    Org,
    Person,
    Posts,
    Progress,
    RecipientKind,
    Tier,
    resolve,
    walk_up,
)

H = timedelta(hours=1)

# The complaint ladder of issue #18: a warning at 80 % of the target, then four tiers.
COMPLAINT = Ladder(
    (
        Tier("warning", RecipientKind.ASSIGNEE, fraction=0.8),
        Tier("assignee", RecipientKind.ASSIGNEE, fraction=1.0),
        Tier("branch", RecipientKind.BRANCH_MANAGER, after=30 * H),
        Tier("region", RecipientKind.REGION_MANAGER, after=48 * H),
        Tier("executive", RecipientKind.SENIOR_MANAGEMENT, after=72 * H),
    )
)


def _org(*people: Person, senior: tuple[int, ...] = (100,)) -> Org:
    everyone = {p.id: p for p in people}
    everyone.setdefault(100, Person(100, active=True, reachable=True, role="executive"))
    return Org(everyone, senior)


ORG = _org(
    Person(1, True, True, manager_id=2),  # account manager
    Person(2, True, True, manager_id=3),  # branch manager
    Person(3, True, True, manager_id=100),  # region manager
)
POSTS = Posts(assignee_id=1, branch_manager_id=2, region_manager_id=3)


def _names(notices: list) -> list[str]:  # type: ignore[type-arg]
    return [n.tier.name for n in notices]


def test_tiers_pass_in_order_each_with_its_recipient() -> None:
    target = Progress(elapsed=20 * H, target=24 * H)
    assert _names(COMPLAINT.due(target, set(), POSTS, ORG)) == ["warning"]
    late = COMPLAINT.due(Progress(50 * H, 24 * H), {"warning"}, POSTS, ORG)
    assert [(n.tier.name, n.recipient_id, n.reason) for n in late] == [
        ("assignee", 1, None),
        ("branch", 2, None),
        ("region", 3, None),
    ]
    top = COMPLAINT.due(
        Progress(80 * H, 24 * H), {"warning", "assignee", "branch", "region"}, POSTS, ORG
    )
    assert [(n.tier.name, n.recipient_id) for n in top] == [("executive", 100)]


def test_several_thresholds_at_once_notify_every_passed_tier_once() -> None:
    notices = COMPLAINT.due(Progress(100 * H, 24 * H), set(), POSTS, ORG)
    assert _names(notices) == ["warning", "assignee", "branch", "region", "executive"]


def test_fraction_tiers_need_a_target() -> None:
    assert _names(COMPLAINT.due(Progress(40 * H), set(), POSTS, ORG)) == ["branch"]


def test_inactive_or_unreachable_holder_is_skipped_up_their_chain() -> None:
    org = _org(
        Person(2, False, True, manager_id=3),
        Person(3, True, False, manager_id=4),
        Person(4, True, True),
    )
    notice = resolve(Tier("b", RecipientKind.BRANCH_MANAGER, after=H), POSTS, org)
    assert notice.recipient_id == 4 and notice.reason is not None and "staff 2" in notice.reason


def test_vacant_post_passes_to_the_next_post_up() -> None:
    posts = Posts(assignee_id=1, branch_manager_id=None, region_manager_id=3)
    notice = resolve(Tier("b", RecipientKind.BRANCH_MANAGER, after=H), posts, ORG)
    assert (notice.recipient_id, notice.reason) == (3, "no branch_manager")


def test_cycle_ends_at_senior_management_with_the_reason() -> None:
    org = _org(Person(2, False, True, manager_id=17), Person(17, False, True, manager_id=2))
    notice = resolve(Tier("b", RecipientKind.BRANCH_MANAGER, after=H), POSTS, org)
    assert notice.recipient_id == 100 and notice.reason == "cycle at staff 2"


def test_missing_manager_ends_at_senior_management_with_the_reason() -> None:
    org = _org(Person(2, False, True, manager_id=9))
    notice = resolve(Tier("b", RecipientKind.BRANCH_MANAGER, after=H), POSTS, org)
    assert notice.recipient_id == 100 and notice.reason == "manager 9 missing"


def test_nobody_eligible_anywhere_is_reported_not_raised() -> None:
    org = _org(Person(100, False, True), Person(2, False, True))
    notice = resolve(Tier("b", RecipientKind.BRANCH_MANAGER, after=H), POSTS, org)
    assert notice.recipient_id is None and notice.reason is not None
    assert notice.reason.endswith("no senior management")


def test_role_tier_goes_to_an_eligible_holder_of_the_role() -> None:
    org = _org(
        Person(7, False, True, role="marketing_admin"),
        Person(8, True, True, role="marketing_admin"),
    )
    tier = Tier("admin", RecipientKind.ROLE, after=H, role="marketing_admin")
    assert resolve(tier, POSTS, org).recipient_id == 8


def test_bad_tiers_are_refused() -> None:
    with pytest.raises(ValueError):
        Tier("x", RecipientKind.ASSIGNEE)
    with pytest.raises(ValueError):
        Tier("x", RecipientKind.ASSIGNEE, after=H, fraction=0.5)
    with pytest.raises(ValueError):
        Tier("x", RecipientKind.ROLE, after=H)
    with pytest.raises(ValueError):
        Ladder(
            (Tier("x", RecipientKind.ASSIGNEE, after=H), Tier("x", RecipientKind.ASSIGNEE, after=H))
        )


# Properties over random organisations (cycles, gaps, inactive staff) and run sequences.
_ids = st.integers(min_value=1, max_value=12)
_people = st.dictionaries(
    _ids,
    st.tuples(st.booleans(), st.booleans(), st.one_of(st.none(), st.integers(1, 14))),
    max_size=12,
)


def _random_org(raw: dict[int, tuple[bool, bool, int | None]], senior: list[int]) -> Org:
    people = {i: Person(i, a, r, manager_id=m) for i, (a, r, m) in raw.items()}
    return Org(people, tuple(senior))


@settings(max_examples=300, deadline=None)
@given(
    raw=_people,
    senior=st.lists(_ids, max_size=3),
    posts=st.tuples(*(st.one_of(st.none(), st.integers(1, 14)) for _ in range(3))),
    steps=st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=8),
)
def test_each_tier_at_most_once_never_an_ineligible_recipient(
    raw: dict[int, tuple[bool, bool, int | None]],
    senior: list[int],
    posts: tuple[int | None, int | None, int | None],
    steps: list[int],
) -> None:
    org = _random_org(raw, senior)
    item = Posts(*posts)
    reached: set[str] = set()
    notified: list[str] = []
    elapsed = timedelta(0)
    for hours in steps:  # runs at increasing ages, each recording what it notified
        elapsed += hours * H
        for notice in COMPLAINT.due(Progress(elapsed, 24 * H), reached, item, org):
            notified.append(notice.tier.name)
            reached.add(notice.tier.name)
            if notice.recipient_id is not None:
                assert org.people[notice.recipient_id].eligible
            else:
                assert notice.reason
    assert len(notified) == len(set(notified))
    # Every tier the final age passed was notified (exactly once, by the line above).
    assert set(notified) == {
        t.name for t in COMPLAINT.tiers if t.reached(Progress(elapsed, 24 * H))
    }


@settings(max_examples=300, deadline=None)
@given(raw=_people, start=_ids)
def test_walk_up_terminates_with_an_eligible_person_or_a_reason(
    raw: dict[int, tuple[bool, bool, int | None]], start: int
) -> None:
    people = _random_org(raw, []).people
    found, reason = walk_up(start, people)
    if found is None:
        assert reason
    else:
        assert people[found].eligible and (reason is None) == (found == start)
