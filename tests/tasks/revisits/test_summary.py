from __future__ import annotations

from tasks.common.run_context import RunCounts
from tasks.revisits.summary import artifact_rows, ledger_counts


def test_rows_per_region_with_reasons_and_total() -> None:
    counts = RunCounts()
    for key, n in (
        ("due", 5),
        ("created", 4),
        ("care_emails", 2),
        ("skipped:no_branch", 1),
        ("overdue", 3),
        ("escalated:branch", 1),
    ):
        counts.add("EAST", key, n)
    counts.add("WEST", "digests", 2)
    counts.add("WEST", "care_skipped:invalid_email", 1)
    counts.add("-", "escalation_emails", 1)
    rows = {row["region"]: row for row in artifact_rows(counts)}
    assert rows["EAST"]["created"] == 4 and rows["EAST"]["overdue (open)"] == 3
    assert rows["EAST"]["skipped (why)"] == "skipped:no_branch=1"
    assert rows["WEST"]["emails queued"] == 2
    assert rows["WEST"]["skipped (why)"] == "care_skipped:invalid_email=1"
    assert rows["TOTAL"]["emails queued"] == 5 and rows["TOTAL"]["due"] == 5
    assert rows["-"]["escalation emails"] == 1
    assert ledger_counts(counts)["skipped_no_branch"] == 1


def test_rows_show_region_names_not_codes() -> None:
    counts = RunCounts()
    counts.add("R02", "due", 2)
    counts.add("R01", "due", 1)
    counts.add("R09", "due", 4)  # a region the directory does not name: its code, not a blank
    counts.add("-", "due", 3)
    rows = artifact_rows(counts, {"R01": "华东片区", "R02": "城北片区"})
    assert [row["region"] for row in rows] == ["华东片区", "城北片区", "R09", "-", "TOTAL"]
    assert [row["due"] for row in rows] == [1, 2, 4, 3, 10]
