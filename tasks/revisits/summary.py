"""Turn the revisits flow's per-region counters into the run's artifact rows and ledger counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from tasks.common.run_context import RunCounts

COLUMNS = (
    ("due", "due"),
    ("created", "created"),
    ("deferred", "deferred to later days"),
    ("over_capacity", "planned over capacity"),
    ("overdue", "overdue (open)"),
    ("escalated:branch", "escalated to branch"),
    ("escalated:region", "escalated to region"),
    ("care_emails", "care emails"),
    ("care_delivered", "care emails delivered"),
    ("care_failed_phone", "care emails failed (now calls)"),
    ("reassigned", "customers reassigned (leavers)"),
    ("digests", "digests"),
    ("escalation_emails", "escalation emails"),
)
# Emails a run adds to the outbox, summed into the "emails queued" column.
EMAIL_KEYS = ("care_emails", "digests", "escalation_emails")


def artifact_rows(
    counts: RunCounts, region_names: Mapping[str, str] | None = None
) -> list[dict[str, str | int]]:
    """One row per region, by name (片区 name; the code when a region has none, ``-`` for
    customers without a region), plus a total row. Counts are keyed by region code."""
    names = region_names or {}
    rows: list[dict[str, str | int]] = []
    total: Counter[str] = Counter()
    # In code order (R01, R02, ...: how the company numbers its regions), no region last.
    for region in sorted(counts.by_region, key=lambda code: (code == "-", code)):
        counter = counts.by_region[region]
        total.update(counter)
        rows.append(_row(names.get(region) or region, counter))
    rows.append(_row("TOTAL", total))
    return rows


def _row(region: str, counter: Counter[str]) -> dict[str, str | int]:
    row: dict[str, str | int] = {"region": region}
    for key, label in COLUMNS:
        row[label] = counter[key]
    row["emails queued"] = sum(counter[key] for key in EMAIL_KEYS)
    # A customer who cannot get email got a call instead: planned, not skipped.
    instead = sorted((key, n) for key, n in counter.items() if key.startswith(_INSTEAD))
    row["phone instead (why)"] = (
        ", ".join(f"{key.removeprefix(_INSTEAD)}={n}" for key, n in instead) or "-"
    )
    skipped = sorted(
        (key, n)
        for key, n in counter.items()
        if ":" in key and not key.startswith(("escalated:", _INSTEAD))
    )
    row["skipped (why)"] = ", ".join(f"{reason}={n}" for reason, n in skipped) or "-"
    return row


_INSTEAD = "phone_instead:"


def ledger_counts(counts: RunCounts) -> dict[str, int]:
    return counts.totals()
