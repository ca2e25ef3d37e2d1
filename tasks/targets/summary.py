"""The reconciliation's artifact rows and ledger counts (codes, figures and counts only)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.reconciliation import Reconciliation
from tasks.targets.rules.reconcile import ResultRow

Row = dict[str, str | int | float | None]
FLAGS = ("behind", "star", "no_target", "no_activity", "target_mismatch")
# The company table's headline metrics, in this order.
HEADLINE = (TargetMetric.REVENUE_FEN, TargetMetric.VOLUME_ML, TargetMetric.FIRST_RECHARGE_FEN)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def artifact_rows(result: Reconciliation, region_codes: Mapping[int, str]) -> list[Row]:
    """One row per region (and the company): completion and pace of the headline metrics and,
    over its branches and metrics, how many rows carry each flag."""
    by_key = {(r.scope, r.scope_id, r.metric): r for r in result.rows}
    flags: dict[int, Counter[str]] = {}
    for row in result.rows:
        if row.scope is TargetScope.BRANCH and row.parent_id is not None:
            flags.setdefault(row.parent_id, Counter()).update(row.flags)
    rows: list[Row] = []
    units = [(TargetScope.REGION, region) for region in result.organisation.regions]
    for scope, scope_id in [*units, (TargetScope.COMPANY, 0)]:
        name = "company" if scope is TargetScope.COMPANY else region_codes.get(scope_id, "?")
        line: Row = {"region": name}
        for metric in HEADLINE:
            found = by_key.get((scope, scope_id, metric))
            line[f"{metric.value} completion"] = _percent(found.completion if found else None)
            line[f"{metric.value} pace"] = _percent(found.pace if found else None)
        own = by_key.get((scope, scope_id, TargetMetric.REVENUE_FEN))
        line["region vs branch targets"] = (
            "mismatch" if own and "target_mismatch" in own.flags else "ok"
        )
        counted = (
            sum(flags.values(), Counter())
            if scope is TargetScope.COMPANY
            else flags.get(scope_id, Counter())
        )
        for flag in FLAGS[:4]:
            line[f"branch rows {flag}"] = counted[flag]
        rows.append(line)
    return rows


def ledger_counts(rows: list[ResultRow]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(row.flags)
    members = {(r.scope, r.scope_id) for r in rows}
    return {
        "rows": len(rows),
        "members": len(members),
        "branches": sum(1 for scope, _ in members if scope is TargetScope.BRANCH),
        **{f"flag_{flag}": counts[flag] for flag in FLAGS},
    }
