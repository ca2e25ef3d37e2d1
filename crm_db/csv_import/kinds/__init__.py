"""One module per kind of CSV file: its columns, its typed record and its pure row validator."""

from __future__ import annotations

from typing import Any

from crm_db.csv_import.kinds import (
    complaints,
    contacts,
    customers,
    responses,
    targets,
    transactions,
)
from crm_db.csv_import.spec import KindSpec

# In the order files should be imported: customers before the rows that refer to them.
KINDS: dict[str, KindSpec[Any]] = {
    spec.name: spec
    for spec in (
        customers.SPEC,
        transactions.SPEC,
        complaints.SPEC,
        contacts.SPEC,
        targets.SPEC,
        responses.SPEC,
    )
}
