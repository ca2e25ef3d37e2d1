"""``crm import targets``: monthly targets for the company, a region, a branch or an account
manager. Each import that changes something is a new target version (``tasks.targets.store``).

``value`` is given in display units and converted exactly to the base unit stored in
``targets.value``: CNY -> fen for the ``*_fen`` metrics, litres -> ml for the ``*volume_ml``
metrics, a whole number of customers for the ``new_customers_*`` metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import TargetMetric, TargetScope

COLUMNS = (
    Column("period", True, "the month, YYYY-MM"),
    Column("scope", True, "company, region, branch or staff"),
    Column(
        "scope_code",
        True,
        "company: the word company; region code, branch code, or staff external id (per scope)",
    ),
    Column("metric", True, ", ".join(m.value for m in TargetMetric)),
    Column(
        "value",
        True,
        "*_fen: CNY (≤ 2 decimals); *volume_ml: litres (≤ 3 decimals); "
        "new_customers_*: a whole number",
    ),
)


def _fen(value: str) -> int:
    return fields.scaled_decimal(value, places=2, what="amounts are given in CNY, exact to the fen")


def _ml(value: str) -> int:
    return fields.scaled_decimal(
        value, places=3, what="volume is given in litres, exact to the millilitre"
    )


COMPANY_CODE = "company"

_VALUE_PARSERS: dict[TargetMetric, Callable[[str], int]] = {
    TargetMetric.REVENUE_FEN: _fen,
    TargetMetric.RECHARGE_FEN: _fen,
    TargetMetric.FIRST_RECHARGE_FEN: _fen,
    TargetMetric.VOLUME_ML: _ml,
    TargetMetric.NEW_CUSTOMER_VOLUME_ML: _ml,
    TargetMetric.NEW_CUSTOMERS_PERSONAL: fields.count,
    TargetMetric.NEW_CUSTOMERS_COMPANY: fields.count,
    TargetMetric.NEW_CUSTOMERS_FLEET: fields.count,
}


@dataclass(frozen=True, slots=True)
class TargetRecord:
    period: str
    scope: TargetScope
    scope_id: int
    metric: TargetMetric
    value: int

    def values(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "scope": self.scope,
            "scope_id": self.scope_id,
            "metric": self.metric,
            "value": self.value,
        }


def _scope_id(value: str, scope: TargetScope, lookups: Lookups) -> int:
    if scope is TargetScope.COMPANY:
        if value.strip() != COMPANY_CODE:
            raise CellError(f"the company's scope_code is {COMPANY_CODE!r}")
        return 0
    if scope is TargetScope.REGION:
        return fields.resolve(value, lookups.regions, "unknown region code")
    if scope is TargetScope.BRANCH:
        return fields.resolve(value, lookups.branches, "unknown branch code")
    return fields.resolve(value, lookups.staff, "unknown staff external id").id


def validate_target(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> TargetRecord | list[FieldError]:
    check = RowChecker(row, line)
    period = check.take("period", fields.period)
    scope = check.take("scope", lambda v: fields.choice(v, TargetScope))

    def scope_id(value: str) -> int:
        if scope is None:  # the scope cell is already reported; the code cannot be looked up
            fields.identifier(value)
            return 0
        return _scope_id(value, scope, lookups)

    scope_code = check.take("scope_code", scope_id)
    metric = check.take("metric", lambda v: fields.choice(v, TargetMetric))

    def target_value(value: str) -> int:
        if metric is None:  # the metric cell is already reported; its unit is unknown
            fields.required(value)
            return 0
        return _VALUE_PARSERS[metric](value)

    record = TargetRecord(
        period=period,
        scope=scope,
        scope_id=scope_code,
        metric=metric,
        value=check.take("value", target_value),
    )
    return check.errors or record


SPEC: KindSpec[TargetRecord] = KindSpec(
    name="targets",
    columns=COLUMNS,
    key_columns=("period", "scope", "scope_code", "metric"),
    needs=frozenset({LookupName.REGIONS, LookupName.BRANCHES, LookupName.STAFF}),
    validate=validate_target,
)
