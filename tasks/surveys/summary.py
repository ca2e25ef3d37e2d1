"""Turn the surveys flow's counters (keyed by ``kind:class``, see ``invitations.group``) into
the run's artifact rows and ledger counts."""

from __future__ import annotations

from collections import Counter

from tasks.common.run_context import RunCounts

COLUMNS = (
    ("due", "due"),
    ("invited", "invited"),
    ("reminded", "reminded"),
    ("expired", "expired"),
)
TOTAL = "total"  # the group of run-wide counts (emails queued)


def artifact_rows(counts: RunCounts) -> list[dict[str, str | int]]:
    """One row per survey kind and class (NPS first, classes in order), then a total row with
    the emails queued; skips by reason in their own columns."""
    rows: list[dict[str, str | int]] = []
    total: Counter[str] = Counter()
    groups = sorted(
        (g for g in counts.by_region if g != TOTAL),
        key=lambda g: (g.split(":")[0] != "nps", g),
    )
    for key in groups:
        counter = counts.by_region[key]
        total.update(counter)
        kind, _, klass = key.partition(":")
        rows.append(_row(kind, klass, counter))
    total_row = _row("TOTAL", "", total)
    total_row["emails queued"] = (
        counts.by_region[TOTAL]["emails"] if TOTAL in counts.by_region else 0
    )
    rows.append(total_row)
    return rows


def _reasons(counter: Counter[str], prefix: str) -> str:
    found = sorted((k.removeprefix(prefix), n) for k, n in counter.items() if k.startswith(prefix))
    return ", ".join(f"{reason}={n}" for reason, n in found) or "-"


def _row(kind: str, klass: str, counter: Counter[str]) -> dict[str, str | int]:
    row: dict[str, str | int] = {"survey": kind, "class": klass}
    for key, label in COLUMNS:
        row[label] = counter[key]
    row["skipped (why)"] = _reasons(counter, "skipped:")
    row["reminder skipped (why)"] = _reasons(counter, "reminder_skipped:")
    return row


def ledger_counts(counts: RunCounts) -> dict[str, int]:
    """Totals (``invited``, ``skipped_<reason>``, ...) plus ``invited_<kind>_<class>``."""
    totals = counts.totals()
    for key, counter in counts.by_region.items():
        if key != TOTAL and counter["invited"]:
            totals[f"invited_{key.replace(':', '_')}"] = counter["invited"]
    return dict(sorted(totals.items()))
