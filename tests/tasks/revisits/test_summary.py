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
