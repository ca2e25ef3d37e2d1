"""The revisits flow's ``region_codes`` parameter: 片区 codes to region ids, checked up front.

An operator types the codes into the run form; a typo must fail the run before anything is
planned, naming the code, rather than plan nothing for it and report success.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine, select

from crm_db.models import Region


class UnknownRegionError(LookupError):
    """A region code given to a run is not in ``regions``; the message names it."""


def region_ids(engine: Engine, codes: Collection[str] | None) -> frozenset[int] | None:
    """The ids of the regions ``codes`` name; None (every region) when no code is given."""
    wanted = {code.strip() for code in codes or () if code.strip()}
    if not wanted:
        return None
    with engine.connect() as conn:
        rows = conn.execute(select(Region.code, Region.id).where(Region.code.in_(wanted)))
        found = {code: region_id for code, region_id in rows.tuples()}
    if missing := sorted(wanted - found.keys()):
        raise UnknownRegionError(
            f"region_codes: unknown region code(s) {', '.join(missing)} "
            "(see the regions table, column code)"
        )
    return frozenset(found.values())
