"""What every CRM flow takes and returns, so ``crm run`` can drive any flow in the registry.

Every flow accepts ``as_of: date | None`` (None: today in the CRM time zone) and
``dry_run: bool``, and returns a ``FlowSummary``: counts and ids, never rows (Prefect keeps a
flow's return value in memory and shows it in the UI).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypedDict

from crm_core.settings import get_settings

HealthStatus = Literal["ok", "warning"]


class FlowSummary(TypedDict):
    flow: str
    as_of: str
    dry_run: bool
    status: HealthStatus
    counts: dict[str, int]
    warnings: list[str]
    ledger_run_id: int | None
    artifact_key: str | None


def resolve_as_of(as_of: date | None, now: datetime | None = None) -> date:
    """The business date of a run: the given one, or today in the configured time zone.

    A schedule fires at 00:30 Asia/Shanghai, which is still the previous day in UTC; the
    business date must follow the CRM's zone, not the worker's clock.
    """
    if as_of is not None:
        return as_of
    tz = get_settings().tz
    return (now.astimezone(tz) if now is not None else datetime.now(tz)).date()
