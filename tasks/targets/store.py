"""Versioned targets, read and written (IO).

A version is one ``target_versions`` row; it holds only the target rows it changed. The target
of a key (period, scope, scope id, metric) *as of version V* is the value of its row with the
greatest ``version_id`` <= V; ``None`` for V means the latest version. Rows are never updated
or deleted, so every version can be read back as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, tuple_

from crm_db.enums import TargetMetric, TargetScope
from crm_db.models import Target, TargetVersion

TargetKey = tuple[str, TargetScope, int, TargetMetric]  # period, scope, scope_id, metric


@dataclass(frozen=True, slots=True)
class TargetValue:
    key: TargetKey
    value: int


def latest_version_id(conn: Connection) -> int | None:
    """The newest version, or None when no target was ever set."""
    return conn.scalar(select(func.max(TargetVersion.id)))


def effective_targets(
    conn: Connection, periods: Sequence[str], version_id: int | None
) -> dict[TargetKey, int]:
    """Every target of ``periods`` as of ``version_id`` (None: the latest)."""
    stmt = select(Target.period, Target.scope, Target.scope_id, Target.metric, Target.value).where(
        Target.period.in_(list(periods))
    )
    if version_id is not None:
        stmt = stmt.where(Target.version_id <= version_id)
    found: dict[TargetKey, int] = {}
    # Ascending versions: a later version's row overwrites the earlier one of its key.
    for period, scope, scope_id, metric, value in conn.execute(
        stmt.order_by(Target.version_id, Target.id)
    ):
        found[(period, TargetScope(scope), scope_id, TargetMetric(metric))] = value
    return found


def effective_values(conn: Connection, keys: Sequence[TargetKey]) -> dict[TargetKey, int]:
    """The latest value of each of ``keys`` that has one."""
    if not keys:
        return {}
    column = tuple_(Target.period, Target.scope, Target.scope_id, Target.metric)
    wanted = [(p, s.value, i, m.value) for p, s, i, m in keys]
    found: dict[TargetKey, int] = {}
    for period, scope, scope_id, metric, value in conn.execute(
        select(Target.period, Target.scope, Target.scope_id, Target.metric, Target.value)
        .where(column.in_(wanted))
        .order_by(Target.version_id, Target.id)
    ):
        found[(period, TargetScope(scope), scope_id, TargetMetric(metric))] = value
    return found


def create_version(
    conn: Connection,
    *,
    now: datetime,
    created_by: str,
    source: str,
    source_name: str | None = None,
    note: str | None = None,
) -> int:
    result = conn.execute(
        insert(TargetVersion)
        .values(
            created_at=now,
            created_by=created_by[:200],
            source=source[:40],
            source_name=None if source_name is None else source_name[:300],
            note=note,
        )
        .returning(TargetVersion.id)
    )
    return int(result.scalar_one())


def write_values(conn: Connection, version_id: int, values: Iterable[TargetValue]) -> int:
    rows = [
        {
            "version_id": version_id,
            "period": v.key[0],
            "scope": v.key[1],
            "scope_id": v.key[2],
            "metric": v.key[3],
            "value": v.value,
        }
        for v in values
    ]
    if rows:
        conn.execute(insert(Target), rows)
    return len(rows)
