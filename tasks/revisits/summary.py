"""Turn the revisits flow's per-region counters into the run's artifact rows and ledger counts."""

from __future__ import annotations

from collections import Counter

from tasks.common.run_context import RunCounts

COLUMNS = (
    ("due", "due"),
    ("created", "created"),
    ("overdue", "overdue (open)"),
    ("escalated:branch", "escalated to branch"),
    ("escalated:region", "escalated to region"),
    ("care_emails", "care emails"),
    ("digests", "digests"),
    ("escalation_emails", "escalation emails"),
)
# Emails a run adds to the outbox, summed into the "emails queued" column.
EMAIL_KEYS = ("care_emails", "digests", "escalation_emails")


def artifact_rows(counts: RunCounts) -> list[dict[str, str | int]]:
    """One row per region (and ``-`` for customers without one), plus a total row."""
    rows: list[dict[str, str | int]] = []
    total: Counter[str] = Counter()
    for region in sorted(counts.by_region):
        counter = counts.by_region[region]
        total.update(counter)
        rows.append(_row(region, counter))
    rows.append(_row("TOTAL", total))
    return rows


def _row(region: str, counter: Counter[str]) -> dict[str, str | int]:
    row: dict[str, str | int] = {"region": region}
    for key, label in COLUMNS:
        row[label] = counter[key]
    row["emails queued"] = sum(counter[key] for key in EMAIL_KEYS)
    skipped = sorted(
        (key, n) for key, n in counter.items() if ":" in key and not key.startswith("escalated:")
    )
    row["skipped (why)"] = ", ".join(f"{reason}={n}" for reason, n in skipped) or "-"
    return row


def ledger_counts(counts: RunCounts) -> dict[str, int]:
    return counts.totals()
