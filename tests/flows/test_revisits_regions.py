"""The revisits flow's ``region_codes``: only those regions' due customers are planned, in SQL;
an unknown code fails the run before anything is written, naming the code."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, RunStatus
from crm_db.models import FlowRun, Revisit
from crm_db.session import session_scope
from flows.revisits import revisits
from tasks.revisits.regions import UnknownRegionError
from tests.factories import make_customer, make_org

AS_OF = date(2026, 11, 23)
PINNED = {"abc_pinned": True, "abc_pinned_reason": "test"}


def _seed(engine: Engine) -> dict[str, set[int]]:
    """Two due A customers in each of three regions; the customer ids by region code."""
    ids: dict[str, set[int]] = {}
    with session_scope(engine) as session:
        for code in ("EAST", "WEST", "NORTH"):
            org = make_org(session, code)
            customers = [make_customer(session, org, abc_class=AbcClass.A, **PINNED)]
            customers.append(make_customer(session, org, abc_class=AbcClass.A, **PINNED))
            session.flush()
            ids[code] = {c.id for c in customers}
    return ids


def _planned(engine: Engine) -> set[int]:
    with session_scope(engine) as session:
        return set(session.scalars(select(Revisit.customer_id)))


def test_only_the_given_regions_are_planned_and_an_unknown_code_fails_naming_it(
    flow_db: Engine,
) -> None:
    ids = _seed(flow_db)

    # A typo fails the run before anything is planned, naming the code (not the good one).
    state = revisits(as_of=AS_OF, region_codes=["EAST", "SOUHT"], return_state=True)

    assert state.is_failed()
    with pytest.raises(UnknownRegionError, match=r"region_codes: .*\bSOUHT\b") as raised:
        state.result()
    assert "EAST" not in str(raised.value)
    assert _planned(flow_db) == set()
    with session_scope(flow_db) as session:
        ledger = session.scalars(select(FlowRun).where(FlowRun.flow_name == "revisits")).one()
        assert ledger.status is RunStatus.FAILED

    some = revisits(as_of=AS_OF, region_codes=["WEST", "NORTH"])

    assert _planned(flow_db) == ids["WEST"] | ids["NORTH"]
    assert some["counts"]["created"] == 4
    with session_scope(flow_db) as session:
        ledger = session.get(FlowRun, some["ledger_run_id"])
        assert ledger is not None and ledger.parameters["region_codes"] == ["NORTH", "WEST"]

    # Empty means every region; the ones already planned are not planned twice.
    rest = revisits(as_of=AS_OF, region_codes=[])

    assert rest["counts"]["created"] == 2
    assert _planned(flow_db) == ids["EAST"] | ids["WEST"] | ids["NORTH"]
