"""Report rules: a region's view holds nothing of another region; the company view holds the
regions and no station; headline cells add the card types up; outbox keys per revision."""

from __future__ import annotations

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.reconcile import Organisation, reconcile
from tasks.targets.rules.reports import (
    Member,
    company_view,
    flag_counts,
    members,
    region_view,
    report_key,
)

B, R, C = TargetScope.BRANCH, TargetScope.REGION, TargetScope.COMPANY
M = TargetMetric
ORG = Organisation(branch_region={11: 1, 12: 1, 21: 2}, regions=[1, 2])
TARGETS = {
    (B, 11, M.REVENUE_FEN): 100_000,
    (B, 11, M.NEW_CUSTOMERS_FLEET): 2,
    (B, 11, M.NEW_CUSTOMERS_PERSONAL): 8,
    (B, 21, M.REVENUE_FEN): 100_000,
    (R, 1, M.REVENUE_FEN): 100_000,
}
ACTUAL = {
    (B, 11, M.REVENUE_FEN): 70_050,
    (B, 11, M.NEW_CUSTOMERS_FLEET): 3,
    (B, 11, M.NEW_CUSTOMERS_COMPANY): 1,
    (B, 21, M.REVENUE_FEN): 150_000,
    (R, 1, M.REVENUE_FEN): 70_050,
    (R, 2, M.REVENUE_FEN): 150_000,
    (C, 0, M.REVENUE_FEN): 220_050,
}
ROWS = reconcile(ORG, TARGETS, ACTUAL, {}, {}, 1, 1)
NAMES = {
    Member(C, 0): "公司",
    Member(R, 1): "东区",
    Member(R, 2): "西区",
    Member(B, 11): "一号站",
    Member(B, 12): "二号站",
    Member(B, 21): "三号站",
}


def test_a_region_view_holds_its_region_and_branches_only() -> None:
    view = region_view(ROWS, 1)
    assert {(r.scope, r.scope_id) for r in view} == {(R, 1), (B, 11), (B, 12)}
    entries = members(view, NAMES)
    assert [e["name"] for e in entries] == ["东区", "一号站", "二号站"]
    region = entries[0]["cells"]
    # Both shown: the region's own target and the sum of its branches' targets.
    assert (region["revenue"]["target"], region["revenue"]["branch_targets"]) == (1000.0, 1000.0)
    assert region["new_customers"]["target"] is None
    assert region["new_customers"]["branch_targets"] == 10
    assert {(r.scope, r.scope_id) for r in company_view(ROWS)} == {(C, 0), (R, 1), (R, 2)}


def test_cells_convert_units_and_add_card_types() -> None:
    (one,) = [e for e in members(region_view(ROWS, 1), NAMES) if e["name"] == "一号站"]
    revenue = one["cells"]["revenue"]
    assert (revenue["actual"], revenue["target"], revenue["completion_pct"]) == (
        700.5,
        1000.0,
        70.0,
    )
    assert revenue["flag"] == "behind"
    new = one["cells"]["new_customers"]
    assert (new["actual"], new["target"], new["completion_pct"]) == (4, 10, 40.0)
    assert new["flag"] is None  # several metrics: flags are listed per metric instead
    assert {"flag": "behind", "metric": "revenue_fen"} in one["flags"]
    assert "new_customers_company" in one["without_target"]
    assert one["rank"] == 2  # 70 % against 三号站's 150 %
    idle = [e for e in members(region_view(ROWS, 1), NAMES) if e["name"] == "二号站"][0]
    assert idle["cells"]["revenue"]["target"] is None and idle["rank"] is None


def test_flag_counts_cover_branch_rows() -> None:
    counts = flag_counts(region_view(ROWS, 2))
    assert counts["star"] == 1 and counts["behind"] == 0
    assert counts["no_target"] == len(M) - 1  # 三号站 has a revenue target only


def test_report_keys_per_revision() -> None:
    assert report_key("monthly", "calendar", "2026-11", 5, None) == (
        "target_report:monthly:calendar:2026-11:staff:5"
    )
    assert report_key("weekly", "settlement", "2026-W49", 5, 2).endswith(":staff:5:rev2")
