"""The complaint check's artifact rows: open complaints by state, then warnings, breaches and
escalations per tier (counts only)."""

from __future__ import annotations

from tasks.complaints.checks import CheckOutcome
from tasks.complaints.rules.escalation import TARGETS, TIER_NAMES

Row = dict[str, str | int]


def artifact_rows(outcome: CheckOutcome) -> list[Row]:
    rows: list[Row] = [
        {"section": "open complaints", "item": state, "count": n}
        for state, n in outcome.open_by_state.items()
    ]
    rows.append(
        {"section": "this check", "item": "warnings (80 %)", "count": outcome.warnings_count}
    )
    rows.append({"section": "this check", "item": "breaches (100 %)", "count": outcome.breaches})
    for tier in TIER_NAMES:
        for target in TARGETS:
            rows.append(
                {
                    "section": "escalations",
                    "item": f"{target} / {tier}",
                    "count": outcome.escalations[(target, tier)],
                }
            )
    rows.extend(
        [
            {"section": "四个不漏", "item": "assigned by branch", "count": outcome.assigned},
            {"section": "四个不漏", "item": "unassignable", "count": outcome.unassignable},
            {"section": "四个不漏", "item": "verify reminders", "count": outcome.verify_reminders},
            {"section": "emails", "item": "queued", "count": sum(outcome.emails.values())},
        ]
    )
    return rows
