"""The reconciliation of targets and actuals, as a pure rule over plain values.

Inputs are exact integers in base units keyed by (scope, scope id, metric); outputs are one
``ResultRow`` per member of the organisation and metric. Rules:

- **Members**: the company, every region and every branch (with or without targets: never
  dropped), and every account manager with a target or an actual.
- **Completion** = actual / target; **pace** = actual / expected, where expected is the target
  pro-rated by the working days elapsed (the whole target once the period is over).
- **MoM / YoY** = actual / the same measure in the previous month / the same month last year
  - 1 (None when that was 0).
- **Flags** (comma-separated, sorted): ``behind`` (pace below 80 %), ``star`` (above 120 %),
  ``no_target`` (no target for this metric), ``no_activity`` (a positive target, nothing
  done), ``target_mismatch`` (a region's target differs from the sum of its branches'
  targets, or only one of the two exists).
- **Rank**, per scope and metric, among members with a positive target: by completion (exact
  fractions, so normalised by target), higher first; equal completion: the larger actual
  first; equal both: the same rank (competition ranking 1, 2, 2, 4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from crm_db.enums import TargetMetric, TargetScope
from tasks.targets.rules.periods import prorate_share

METRICS: tuple[TargetMetric, ...] = tuple(TargetMetric)
Key = tuple[TargetScope, int, TargetMetric]
COMPANY_ID = 0


@dataclass(frozen=True)
class FlagPolicy:
    behind_below: Fraction = Fraction(4, 5)  # 80 %
    star_above: Fraction = Fraction(6, 5)  # 120 %


@dataclass(frozen=True, slots=True)
class GroupActual:
    """One row of the database's GROUP BY: the credited branch (None: a customer without a
    branch) and account manager (None: nobody) and the summed value of one metric."""

    branch_id: int | None
    staff_id: int | None
    metric: TargetMetric
    value: int


@dataclass(frozen=True, slots=True)
class Organisation:
    branch_region: Mapping[int, int]  # every branch -> its region
    regions: Sequence[int]  # every region


@dataclass(frozen=True, slots=True)
class ResultRow:
    scope: TargetScope
    scope_id: int
    parent_id: int | None
    metric: TargetMetric
    target: int | None
    expected: int | None
    actual: int
    completion: float | None
    pace: float | None
    previous_month: int
    previous_year: int
    mom: float | None
    yoy: float | None
    rank: int | None
    branch_target_sum: int | None
    flags: tuple[str, ...]


def roll_up(groups: Iterable[GroupActual], org: Organisation) -> dict[Key, int]:
    """Per-(branch, staff) sums rolled up to branch, region, staff and company, exactly. A
    branch the organisation does not know counts for the company only."""
    totals: defaultdict[Key, int] = defaultdict(int)
    for group in groups:
        totals[(TargetScope.COMPANY, COMPANY_ID, group.metric)] += group.value
        if group.branch_id is not None:
            totals[(TargetScope.BRANCH, group.branch_id, group.metric)] += group.value
            region = org.branch_region.get(group.branch_id)
            if region is not None:
                totals[(TargetScope.REGION, region, group.metric)] += group.value
        if group.staff_id is not None:
            totals[(TargetScope.STAFF, group.staff_id, group.metric)] += group.value
    return dict(totals)


def _ratio(numerator: int, denominator: int | None) -> float | None:
    return None if not denominator else numerator / denominator


def _change(current: int, before: int) -> float | None:
    return None if before == 0 else current / before - 1


def _below(done: int, expected: int, threshold: Fraction) -> bool:
    """``done / expected < threshold``, exactly (integers; ``expected`` > 0)."""
    return done * threshold.denominator < threshold.numerator * expected


def _above(done: int, expected: int, threshold: Fraction) -> bool:
    return done * threshold.denominator > threshold.numerator * expected


def _members(
    org: Organisation, targets: Mapping[Key, int], actual: Mapping[Key, int]
) -> list[tuple[TargetScope, int, int | None]]:
    found: dict[tuple[TargetScope, int], int | None] = {(TargetScope.COMPANY, COMPANY_ID): None}
    for region in org.regions:
        found[(TargetScope.REGION, region)] = region
    for branch, region in org.branch_region.items():
        found[(TargetScope.BRANCH, branch)] = region
    for scope, scope_id, _ in (*targets, *actual):
        if (scope, scope_id) in found:
            continue
        if scope is TargetScope.BRANCH:
            found[(scope, scope_id)] = org.branch_region.get(scope_id)
        elif scope is TargetScope.REGION:
            found[(scope, scope_id)] = scope_id
        else:
            found[(scope, scope_id)] = None
    order = {scope: i for i, scope in enumerate(TargetScope)}
    return sorted(((s, i, p) for (s, i), p in found.items()), key=lambda m: (order[m[0]], m[1]))


def reconcile(
    org: Organisation,
    targets: Mapping[Key, int],
    actual: Mapping[Key, int],
    previous_month: Mapping[Key, int],
    previous_year: Mapping[Key, int],
    elapsed: int,
    total: int,
    policy: FlagPolicy | None = None,
) -> list[ResultRow]:
    """Every member x metric (see the module docstring); ``elapsed`` / ``total`` working days
    of the target period through the as-of date."""
    policy = policy or FlagPolicy()
    branch_sums: defaultdict[tuple[int, TargetMetric], int] = defaultdict(int)
    for (scope, scope_id, metric), value in targets.items():
        region = org.branch_region.get(scope_id) if scope is TargetScope.BRANCH else None
        if region is not None:
            branch_sums[(region, metric)] += value
    rows: list[ResultRow] = []
    completions: dict[Key, Fraction] = {}
    for scope, scope_id, parent in _members(org, targets, actual):
        for metric in METRICS:
            key = (scope, scope_id, metric)
            target = targets.get(key)
            done = actual.get(key, 0)
            expected = None if target is None else prorate_share(target, elapsed, total)
            completion = _ratio(done, target)
            pace = _ratio(done, expected)
            flags: set[str] = set()
            if target is None:
                flags.add("no_target")
            elif target > 0 and done == 0:
                flags.add("no_activity")
            if expected:
                if _below(done, expected, policy.behind_below):
                    flags.add("behind")
                elif _above(done, expected, policy.star_above):
                    flags.add("star")
            branch_sum = None
            if scope is TargetScope.REGION:
                branch_sum = branch_sums.get((scope_id, metric))
                if branch_sum != target:
                    flags.add("target_mismatch")
            if target:
                completions[key] = Fraction(done, target)  # exact, for the ranking
            before, last_year = previous_month.get(key, 0), previous_year.get(key, 0)
            rows.append(
                ResultRow(
                    scope=scope,
                    scope_id=scope_id,
                    parent_id=parent,
                    metric=metric,
                    target=target,
                    expected=expected,
                    actual=done,
                    completion=completion,
                    pace=pace,
                    previous_month=before,
                    previous_year=last_year,
                    mom=_change(done, before),
                    yoy=_change(done, last_year),
                    rank=None,
                    branch_target_sum=branch_sum,
                    flags=tuple(sorted(flags)),
                )
            )
    ranks = rank(completions, actual)
    return [
        row
        if (row.scope, row.scope_id, row.metric) not in ranks
        else _with_rank(row, ranks[(row.scope, row.scope_id, row.metric)])
        for row in rows
    ]


def _with_rank(row: ResultRow, value: int) -> ResultRow:
    return replace(row, rank=value)


def rank(completions: Mapping[Key, Fraction], actual: Mapping[Key, int]) -> dict[Key, int]:
    """Competition ranks per (scope, metric): completion, then actual, higher first; members
    equal on both share a rank (listed by id)."""
    groups: defaultdict[tuple[TargetScope, TargetMetric], list[Key]] = defaultdict(list)
    for key in completions:
        groups[(key[0], key[2])].append(key)
    ranks: dict[Key, int] = {}
    for keys in groups.values():
        keys.sort(key=lambda k: (-completions[k], -actual.get(k, 0), k[1]))
        previous: tuple[Fraction, int] | None = None
        for position, key in enumerate(keys, start=1):
            score = (completions[key], actual.get(key, 0))
            ranks[key] = ranks[keys[position - 2]] if score == previous else position
            previous = score
    return ranks
