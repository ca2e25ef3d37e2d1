"""Load the reference maps a kind of file needs, once per import (IO)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, func, select

from crm_db.csv_import.id_map import id_map
from crm_db.csv_import.lookups import LookupName, Lookups, StaffRef
from crm_db.models import Branch, Customer, Region, Revisit, Staff


def load_lookups(
    conn: Connection,
    needs: frozenset[LookupName],
    *,
    default_timezone: str,
    default_locale: str,
    allow_test_email_domain: bool = False,
    now: datetime | None = None,
) -> Lookups:
    """One query per map. The customer map holds only external id -> id (two small values per
    customer), which stays modest even for a million customers."""
    regions: dict[str, int] = {}
    branches: dict[str, int] = {}
    staff: dict[str, StaffRef] = {}
    customers: dict[str, int] = {}
    if LookupName.REGIONS in needs:
        regions = {code: id_ for code, id_ in conn.execute(select(Region.code, Region.id))}
    if LookupName.BRANCHES in needs:
        branches = {code: id_ for code, id_ in conn.execute(select(Branch.code, Branch.id))}
    if LookupName.STAFF in needs:
        staff = {
            ext: StaffRef(id_, bool(active))
            for ext, id_, active in conn.execute(select(Staff.external_id, Staff.id, Staff.active))
        }
    if LookupName.CUSTOMERS in needs:
        result = conn.execution_options(yield_per=50_000).execute(
            select(Customer.external_id, Customer.id)
        )
        customers = {ext: id_ for ext, id_ in result}
    revisits: Mapping[int, int] = {}
    if LookupName.REVISITS in needs:
        # Every revisit, not only open ones (a re-import names revisits it already closed), in
        # an array-backed map: the table grows by a row per customer and cadence.
        low, high, total = conn.execute(
            select(func.min(Revisit.id), func.max(Revisit.id), func.count(Revisit.id))
        ).one()
        found = conn.execution_options(yield_per=50_000).execute(
            select(Revisit.id, Revisit.customer_id)
        )
        revisits = id_map(found.tuples(), low, high, total)
    return Lookups(
        default_timezone=default_timezone,
        default_locale=default_locale,
        allow_test_email_domain=allow_test_email_domain,
        regions=regions,
        branches=branches,
        staff=staff,
        customers=customers,
        revisits=revisits,
        now=now,
    )
