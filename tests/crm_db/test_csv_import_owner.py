"""An owner change through the customer import is audited like any other (source ``import``)
and moves the customer's open revisits to the new account manager. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Engine, select

from crm_db.enums import AbcClass, ContactChannel, RevisitStatus
from crm_db.models import Customer, CustomerOwnerChange, Revisit
from crm_db.session import session_scope
from tests.crm_db.csv_factories import CUSTOMER_HEADER, customer_row, make_org, write_csv
from tests.crm_db.test_csv_import import NOW, run_import


def test_an_import_that_changes_the_account_manager_is_audited(
    engine: Engine, tmp_path: Path
) -> None:
    org = make_org(engine)
    path = tmp_path / "customers.csv"
    write_csv(
        path,
        CUSTOMER_HEADER,
        [customer_row("N1", account_manager_id="S1"), customer_row("N2", account_manager_id="S1")],
    )
    assert run_import(engine, "customers", path)[1] == []
    with session_scope(engine) as session:
        n1 = session.scalars(select(Customer).where(Customer.external_id == "N1")).one()
        session.add(
            Revisit(
                customer_id=n1.id,
                assignee_id=org.staff_ids["S1"],
                abc_class=AbcClass.B,
                channel=ContactChannel.PHONE,
                due_on=date(2026, 3, 10),
                status=RevisitStatus.OPEN,
            )
        )
        n1_id = n1.id
    # A new customer's first owner is no change; nothing is audited for the first import.
    with session_scope(engine) as session:
        assert session.scalars(select(CustomerOwnerChange)).all() == []

    write_csv(
        path,
        CUSTOMER_HEADER,
        [customer_row("N1", account_manager_id="S2"), customer_row("N2", account_manager_id="S1")],
    )
    result, errors = run_import(engine, "customers", path)
    assert errors == [] and result.counts.updated == 1
    with session_scope(engine) as session:
        audit = session.scalars(select(CustomerOwnerChange)).all()
        assert [
            (a.customer_id, a.from_staff_id, a.to_staff_id, a.source, a.changed_at) for a in audit
        ] == [(n1_id, org.staff_ids["S1"], org.staff_ids["S2"], "import", NOW)]
        revisit = session.scalars(select(Revisit)).one()
        assert revisit.assignee_id == org.staff_ids["S2"]
    # The same file again: no change, no audit row.
    run_import(engine, "customers", path)
    with session_scope(engine) as session:
        assert len(session.scalars(select(CustomerOwnerChange)).all()) == 1
