"""Reference data the row validators check against, loaded once per import (see db_lookups)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class LookupName(StrEnum):
    """Which reference maps a kind of file needs, so an import loads only those."""

    REGIONS = "regions"
    BRANCHES = "branches"
    STAFF = "staff"
    CUSTOMERS = "customers"
    REVISITS = "revisits"


@dataclass(frozen=True, slots=True)
class StaffRef:
    id: int
    active: bool


@dataclass(frozen=True)
class Lookups:
    """Codes and external ids mapped to database ids, plus the defaults for empty cells.

    Only the maps a kind needs are filled; the others stay empty. ``now`` is the import's clock
    (rows dated after it are refused where a kind says so); None where no kind needs it."""

    default_timezone: str
    default_locale: str
    allow_test_email_domain: bool = False  # demo mode: accept addresses at *.test
    regions: Mapping[str, int] = field(default_factory=dict)  # region code -> id
    branches: Mapping[str, int] = field(default_factory=dict)  # branch code -> id
    staff: Mapping[str, StaffRef] = field(default_factory=dict)  # staff external id -> ref
    customers: Mapping[str, int] = field(default_factory=dict)  # customer external id -> id
    revisits: Mapping[int, int] = field(default_factory=dict)  # revisit id -> its customer id
    now: datetime | None = None
