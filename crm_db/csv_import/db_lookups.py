"""Load the reference maps a kind of file needs, once per import (IO)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from crm_db.csv_import.lookups import LookupName, Lookups, StaffRef
from crm_db.models import Branch, Customer, Region, Staff


def load_lookups(
    conn: Connection,
    needs: frozenset[LookupName],
    *,
    default_timezone: str,
    default_locale: str,
    allow_test_email_domain: bool = False,
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
    return Lookups(
        default_timezone=default_timezone,
        default_locale=default_locale,
        allow_test_email_domain=allow_test_email_domain,
        regions=regions,
        branches=branches,
        staff=staff,
        customers=customers,
    )
