"""Reconciliation rules: roll-ups are exact sums, completion/pace/MoM/YoY, flags at 80 % and
120 %, region vs branch targets, members never dropped, ranks normalised by target with ties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.owners import END, OwnerChangeRow, owner_on, owner_spans
from tasks.targets.rules.reconcile import (
    METRICS,
    GroupActual,
    Organisation,
    ResultRow,
    reconcile,
    roll_up,
)

REV = TargetMetric.REVENUE_FEN
VOL = TargetMetric.VOLUME_ML
B, R, S, C = TargetScope.BRANCH, TargetScope.REGION, TargetScope.STAFF, TargetScope.COMPANY
ORG = Organisation(branch_region={11: 1, 12: 1, 21: 2}, regions=[1, 2])
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _row(
    rows: list[ResultRow], scope: TargetScope, scope_id: int, metric: TargetMetric
) -> ResultRow:
    (found,) = [r for r in rows if (r.scope, r.scope_id, r.metric) == (scope, scope_id, metric)]
    return found


def test_roll_up_credits_branch_region_staff_and_company() -> None:
    groups = [
        GroupActual(11, 7, REV, 100),
        GroupActual(12, 7, REV, 50),
        GroupActual(21, None, REV, 5),
        GroupActual(None, 8, REV, 3),  # a customer without a branch: company and staff only
    ]
    totals = roll_up(groups, ORG)
    assert totals == {
        (C, 0, REV): 158,
        (B, 11, REV): 100,
        (B, 12, REV): 50,
        (B, 21, REV): 5,
        (R, 1, REV): 150,
        (R, 2, REV): 5,
        (S, 7, REV): 150,
        (S, 8, REV): 3,
    }


@given(
    st.lists(
        st.tuples(
            st.sampled_from([11, 12, 21, None]),
            st.sampled_from([7, 8, None]),
            st.integers(0, 10**14),
        ),
        max_size=30,
    )
)
def test_regions_equal_the_sum_of_their_branches(
    cells: list[tuple[int | None, int | None, int]],
) -> None:
    totals = roll_up([GroupActual(b, s, VOL, v) for b, s, v in cells], ORG)
    for region in ORG.regions:
        branches = [b for b, r in ORG.branch_region.items() if r == region]
        assert totals.get((R, region, VOL), 0) == sum(totals.get((B, b, VOL), 0) for b in branches)
    assert totals.get((C, 0, VOL), 0) == sum(v for _, _, v in cells)


def test_completion_pace_changes_and_flags() -> None:
    targets = {(B, 11, REV): 1_000, (B, 12, REV): 1_000, (B, 21, REV): 400, (R, 1, REV): 2_000}
    actual = {(B, 11, REV): 700, (B, 12, REV): 1_300, (R, 1, REV): 2_000, (C, 0, REV): 2_000}
    rows = reconcile(ORG, targets, actual, {(B, 11, REV): 350}, {(B, 11, REV): 700}, 10, 20)
    behind = _row(rows, B, 11, REV)
    assert (behind.target, behind.expected, behind.actual) == (1_000, 500, 700)
    assert behind.completion == 0.7 and behind.pace == 1.4  # half-way through: ahead of pace
    assert behind.mom == 1.0 and behind.yoy == 0.0
    assert behind.flags == ("star",) and behind.parent_id == 1
    idle = _row(rows, B, 21, REV)
    assert idle.actual == 0 and idle.flags == ("behind", "no_activity")
    region = _row(rows, R, 1, REV)
    assert region.branch_target_sum == 2_000 and "target_mismatch" not in region.flags
    other = _row(rows, R, 2, REV)  # no region target, its branch has one
    assert other.branch_target_sum == 400 and set(other.flags) == {"no_target", "target_mismatch"}
    company = _row(rows, C, 0, REV)
    assert company.target is None and company.flags == ("no_target",) and company.mom is None


def test_flag_thresholds_are_strict_at_80_and_120_percent() -> None:
    targets = {(B, b, REV): 100 for b in (11, 12, 21)}
    actual = {(B, 11, REV): 80, (B, 12, REV): 120, (B, 21, REV): 79}
    rows = reconcile(ORG, targets, actual, {}, {}, 1, 1)
    assert _row(rows, B, 11, REV).flags == ()
    assert _row(rows, B, 12, REV).flags == ()
    assert _row(rows, B, 21, REV).flags == ("behind",)
    rows = reconcile(ORG, targets, {(B, 12, REV): 121}, {}, {}, 1, 1)
    assert _row(rows, B, 12, REV).flags == ("star",)


def test_members_are_never_dropped() -> None:
    rows = reconcile(ORG, {(S, 9, VOL): 10}, {(S, 8, REV): 5}, {}, {}, 3, 20)
    members = {(r.scope, r.scope_id) for r in rows}
    assert members == {(C, 0), (R, 1), (R, 2), (B, 11), (B, 12), (B, 21), (S, 8), (S, 9)}
    assert len(rows) == len(members) * len(METRICS)
    assert _row(rows, S, 9, VOL).flags == ("behind", "no_activity")
    assert _row(rows, B, 12, REV).flags == ("no_target",)


def test_rank_by_completion_then_actual_with_shared_ranks() -> None:
    targets = {(B, 11, REV): 100, (B, 12, REV): 200, (B, 21, REV): 100}
    # 11 and 12 at 50 %: 12 did more (100 > 50) and ranks first; 21 at 50 %, 50 done: tied with 11
    actual = {(B, 11, REV): 50, (B, 12, REV): 100, (B, 21, REV): 50}
    rows = reconcile(ORG, targets, actual, {}, {}, 1, 1)
    assert [_row(rows, B, b, REV).rank for b in (12, 11, 21)] == [1, 2, 2]
    actual[(B, 21, REV)] = 120  # 120 %: first
    rows = reconcile(ORG, targets, actual, {}, {}, 1, 1)
    assert [_row(rows, B, b, REV).rank for b in (21, 12, 11)] == [1, 2, 3]
    # Members without a positive target are not ranked.
    rows = reconcile(ORG, {(B, 11, REV): 0}, {(B, 11, REV): 9}, {}, {}, 1, 1)
    assert _row(rows, B, 11, REV).rank is None and _row(rows, B, 11, REV).completion is None


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def test_owner_spans_follow_the_assignment_history_in_local_dates() -> None:
    d1, d2 = date(2026, 11, 10), date(2026, 11, 20)
    changes = [
        OwnerChangeRow(1, 5, 6, _at(d1)),
        OwnerChangeRow(1, 6, 7, _at(d2, 1)),  # 01:00 Shanghai = the evening before in UTC
        OwnerChangeRow(1, 7, 8, _at(d2, 9)),  # a second change that day: the last one holds
        OwnerChangeRow(2, None, 9, _at(d1)),
    ]
    spans = owner_spans(reversed(changes), SHANGHAI)
    assert owner_on(spans, 1, d1 - timedelta(days=1)) == 5
    assert owner_on(spans, 1, d1) == 6  # the day of the hand-over goes to the new owner
    assert owner_on(spans, 1, d2 - timedelta(days=1)) == 6
    assert owner_on(spans, 1, d2) == 8
    assert owner_on(spans, 1, date(2030, 1, 1)) == 8
    assert owner_on(spans, 2, d1 - timedelta(days=1)) is None
    assert [s.valid_to for s in spans if s.customer_id == 1][-1] == END
    for customer in (1, 2):  # contiguous, no gap, no overlap
        mine = [s for s in spans if s.customer_id == customer]
        assert all(a.valid_to == b.valid_from for a, b in zip(mine, mine[1:], strict=False))
