"""What a target report shows, and to whom (pure).

A region manager's view holds their region's own row and its branches' rows, nothing of any
other region (``region_view``); the company view (marketing admin, executives) holds the
company's row and every region's (``company_view``). Each member shows four headline figures:
revenue (CNY), volume (litres), new customers (the three card types together) and the first
recharge of new cards (CNY), each with its target, completion and pace; its flags over every
metric are listed beside it. Values are JSON-native (the outbox stores contexts as JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.reconcile import ResultRow

NEW_CUSTOMERS = (
    TargetMetric.NEW_CUSTOMERS_PERSONAL,
    TargetMetric.NEW_CUSTOMERS_COMPANY,
    TargetMetric.NEW_CUSTOMERS_FLEET,
)
# Column -> (the metrics it adds up, the divisor from base units to display units).
COLUMNS: dict[str, tuple[tuple[TargetMetric, ...], int]] = {
    "revenue": ((TargetMetric.REVENUE_FEN,), 100),
    "volume": ((TargetMetric.VOLUME_ML,), 1000),
    "new_customers": (NEW_CUSTOMERS, 1),
    "first_recharge": ((TargetMetric.FIRST_RECHARGE_FEN,), 100),
}
# Flags worth a line in a report, in the order they are listed.
REPORTED_FLAGS = ("behind", "star", "no_activity", "no_target", "target_mismatch")


@dataclass(frozen=True, slots=True)
class Member:
    scope: TargetScope
    scope_id: int


def region_view(rows: Iterable[ResultRow], region_id: int) -> list[ResultRow]:
    """The region's own rows and its branches' rows."""
    return [
        r
        for r in rows
        if (r.scope is TargetScope.REGION and r.scope_id == region_id)
        or (r.scope is TargetScope.BRANCH and r.parent_id == region_id)
    ]


def company_view(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The company's rows and every region's."""
    return [r for r in rows if r.scope in (TargetScope.COMPANY, TargetScope.REGION)]


def _pct(numerator: int, denominator: int | None) -> float | None:
    return None if not denominator else round(numerator * 100 / denominator, 1)


def _cell(rows: Sequence[ResultRow], divisor: int) -> dict[str, Any]:
    targets = [r.target for r in rows if r.target is not None]
    expected = [r.expected for r in rows if r.expected is not None]
    actual = sum(r.actual for r in rows)
    target = sum(targets) if targets else None
    pace_base = sum(expected) if expected else None
    flag = None
    if len(rows) == 1:
        flag = next((f for f in ("behind", "star") if f in rows[0].flags), None)
    sums = [r.branch_target_sum for r in rows if r.branch_target_sum is not None]
    branch_sum = sum(sums) if sums else None
    return {
        "actual": actual / divisor if divisor > 1 else actual,
        "target": None if target is None else (target / divisor if divisor > 1 else target),
        # The target pro-rated by working days (the whole target once the period is over).
        "expected": None
        if pace_base is None
        else (pace_base / divisor if divisor > 1 else pace_base),
        # Regions: the sum of their branches' targets, shown beside the region's own.
        "branch_targets": None
        if branch_sum is None
        else (branch_sum / divisor if divisor > 1 else branch_sum),
        "completion_pct": _pct(actual, target),
        "pace_pct": _pct(actual, pace_base),
        "flag": flag,
    }


def members(view: Iterable[ResultRow], names: Mapping[Member, str]) -> list[dict[str, Any]]:
    """One entry per member of ``view``: the company, then regions, then branches by name."""
    by_member: dict[Member, dict[TargetMetric, ResultRow]] = {}
    for row in view:
        by_member.setdefault(Member(row.scope, row.scope_id), {})[row.metric] = row
    order = {TargetScope.COMPANY: 0, TargetScope.REGION: 1, TargetScope.BRANCH: 2}
    entries: list[dict[str, Any]] = []
    for member in sorted(
        by_member, key=lambda m: (order.get(m.scope, 3), names.get(m, ""), m.scope_id)
    ):
        metrics = by_member[member]
        flags = sorted(
            {(f, row.metric.value) for row in metrics.values() for f in row.flags},
            key=lambda item: (REPORTED_FLAGS.index(item[0]), item[1]),
        )
        revenue = metrics.get(TargetMetric.REVENUE_FEN)
        entries.append(
            {
                "name": names.get(member, f"{member.scope.value} {member.scope_id}"),
                "level": member.scope.value,
                "rank": None if revenue is None else revenue.rank,
                "cells": {
                    column: _cell([metrics[m] for m in wanted if m in metrics], divisor)
                    for column, (wanted, divisor) in COLUMNS.items()
                },
                "flags": [{"flag": f, "metric": m} for f, m in flags if f != "no_target"],
                "without_target": sorted(m for f, m in flags if f == "no_target"),
            }
        )
    return entries


def flag_counts(view: Iterable[ResultRow]) -> dict[str, int]:
    """How many branch rows of the view carry each reported flag."""
    counts = dict.fromkeys(REPORTED_FLAGS, 0)
    for row in view:
        if row.scope is TargetScope.BRANCH:
            for flag in row.flags:
                if flag in counts:
                    counts[flag] += 1
    return counts


def report_key(kind: str, rule: str, period: str, staff_id: int, revision: int | None) -> str:
    """The outbox key of one report. The first snapshot's reports use the plain key, so a
    re-run queues nothing again; ``resend`` adds the snapshot's revision, once per revision."""
    base = f"target_report:{kind}:{rule}:{period}:staff:{staff_id}"
    return base if revision is None else f"{base}:rev{revision}"


# The XLSX sheets: one row per member and metric, amounts in display units.
SHEET_STYLES = (
    "text",  # name
    "text",  # level
    "text",  # metric
    "unit",  # target
    "unit",  # expected
    "unit",  # actual
    "percent",  # completion
    "percent",  # pace
    "unit",  # previous month
    "percent",  # MoM
    "unit",  # previous year
    "percent",  # YoY
    "count",  # rank
    "unit",  # the sum of the branches' targets (regions)
    "text",  # flags
)
_UNIT_STYLE = {100: "money", 1000: "litres", 1: "count"}


def metric_divisor(metric: TargetMetric) -> int:
    if metric.value.endswith("_fen"):
        return 100
    if metric.value.endswith("_ml"):
        return 1000
    return 1


def sheet_rows(
    view: Iterable[ResultRow], names: Mapping[Member, str], metric_names: Mapping[str, str]
) -> tuple[list[list[Any]], list[list[str]]]:
    """Rows of a report sheet and each row's cell styles (money, litres or counts by metric)."""
    order = {TargetScope.COMPANY: 0, TargetScope.REGION: 1, TargetScope.BRANCH: 2}
    metrics = {m: i for i, m in enumerate(TargetMetric)}
    rows: list[list[Any]] = []
    styles: list[list[str]] = []
    for row in sorted(
        view,
        key=lambda r: (
            order.get(r.scope, 3),
            names.get(Member(r.scope, r.scope_id), ""),
            r.scope_id,
            metrics[r.metric],
        ),
    ):
        divisor = metric_divisor(row.metric)

        def unit(value: int | None, divisor: int = divisor) -> float | int | None:
            if value is None:
                return None
            return value / divisor if divisor > 1 else value

        rows.append(
            [
                names.get(Member(row.scope, row.scope_id), str(row.scope_id)),
                row.scope.value,
                metric_names.get(row.metric.value, row.metric.value),
                unit(row.target),
                unit(row.expected),
                unit(row.actual),
                row.completion,
                row.pace,
                unit(row.previous_month),
                row.mom,
                unit(row.previous_year),
                row.yoy,
                row.rank,
                unit(row.branch_target_sum),
                ",".join(row.flags),
            ]
        )
        styles.append([_UNIT_STYLE[divisor] if s == "unit" else s for s in SHEET_STYLES])
    return rows, styles
