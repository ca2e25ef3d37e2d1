"""``crm import transactions``: card recharges and fuel purchases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from crm_db.csv_import import fields
from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.lookups import LookupName, Lookups
from crm_db.csv_import.spec import Column, KindSpec, RowChecker
from crm_db.enums import TransactionKind

COLUMNS = (
    Column("external_id", True, "the transaction's id in the source system (upsert key)"),
    Column("customer_id", True, "external id of an existing customer"),
    Column("branch_code", True, "an existing branch code"),
    Column("kind", True, "recharge or purchase"),
    Column(
        "amount_cny",
        True,
        "CNY ≥ 0, exact to the fen: ≤ 2 decimals (more only if zeros), e.g. 350.50",
    ),
    Column(
        "volume_litres",
        False,
        "litres ≥ 0, exact to the ml: ≤ 3 decimals (more only if zeros); empty = 0",
    ),
    Column("occurred_on", True, "YYYY-MM-DD"),
)


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    external_id: str
    customer_id: int
    branch_id: int
    kind: TransactionKind
    amount_fen: int
    volume_ml: int
    occurred_on: date

    def values(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "customer_id": self.customer_id,
            "branch_id": self.branch_id,
            "kind": self.kind,
            "amount_fen": self.amount_fen,
            "volume_ml": self.volume_ml,
            "occurred_on": self.occurred_on,
        }


def _amount_fen(value: str) -> int:
    return fields.scaled_decimal(value, places=2, what="amounts are exact to the fen")


def _volume_ml(value: str) -> int:
    if not value.strip():
        return 0
    return fields.scaled_decimal(value, places=3, what="volumes are exact to the millilitre")


def validate_transaction(
    row: Mapping[str, str], line: int, lookups: Lookups
) -> TransactionRecord | list[FieldError]:
    check = RowChecker(row, line)
    record = TransactionRecord(
        external_id=check.take("external_id", fields.identifier),
        customer_id=check.take(
            "customer_id",
            lambda v: fields.resolve(v, lookups.customers, "unknown customer external id"),
        ),
        branch_id=check.take(
            "branch_code", lambda v: fields.resolve(v, lookups.branches, "unknown branch code")
        ),
        kind=check.take("kind", lambda v: fields.choice(v, TransactionKind)),
        amount_fen=check.take("amount_cny", _amount_fen),
        volume_ml=check.take("volume_litres", _volume_ml),
        occurred_on=check.take("occurred_on", fields.iso_date),
    )
    return check.errors or record


SPEC: KindSpec[TransactionRecord] = KindSpec(
    name="transactions",
    columns=COLUMNS,
    key_columns=("external_id",),
    needs=frozenset({LookupName.BRANCHES, LookupName.CUSTOMERS}),
    validate=validate_transaction,
)
