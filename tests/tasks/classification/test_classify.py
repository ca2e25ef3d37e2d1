from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select

from crm_db.enums import AbcClass, CardType, ValueQuadrant
from crm_db.models import Customer, CustomerClassChange
from crm_db.session import session_scope
from tasks.classification.classify import classify_all
from tests.factories import make_customer, make_org, make_purchase

AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _seed(engine: Engine) -> dict[str, int]:
    """Ten customers with a skewed revenue; one pinned; one with old revenue only."""
    ids: dict[str, int] = {}
    with session_scope(engine) as session:
        org = make_org(session)
        revenues = [400, 400, 60, 50, 40, 21, 15, 10, 4, 1]  # x 1,000 CNY, 12 months
        for i, amount in enumerate(revenues):
            customer = make_customer(session, org, card_type=CardType.PERSONAL)
            ids[f"c{i}"] = customer.id
            make_purchase(session, customer, amount * 100_000, date(2026, 6, 1))
        pinned = make_customer(
            session,
            org,
            abc_class=AbcClass.A,
            abc_pinned=True,
            abc_pinned_reason="strategic fleet account",
        )
        ids["pinned"] = pinned.id
        old = make_customer(session, org, card_type=CardType.FLEET)
        make_purchase(session, old, 9_000_000_00, date(2025, 6, 1))  # outside 12 months
        ids["old"] = old.id
    return ids


def _classes(engine: Engine) -> dict[int, tuple[str | None, str | None]]:
    with session_scope(engine) as session:
        return {c.id: (c.abc_class, c.value_quadrant) for c in session.scalars(select(Customer))}


def test_classifies_by_pareto_and_keeps_pins(engine: Engine) -> None:
    ids = _seed(engine)
    counts = classify_all(engine, as_of=AS_OF, now=NOW, run_id=None, dry_run=False, chunk_size=3)
    classes = _classes(engine)
    assert counts.customers == 12 and counts.pinned_kept == 1
    assert classes[ids["c0"]][0] == AbcClass.A and classes[ids["c1"]][0] == AbcClass.A
    assert classes[ids["c2"]][0] == AbcClass.B
    assert classes[ids["c9"]][0] == AbcClass.C
    assert classes[ids["pinned"]][0] == AbcClass.A  # no revenue, but pinned
    assert classes[ids["old"]] == (AbcClass.C, ValueQuadrant.POTENTIAL)  # fleet: potential
    assert classes[ids["c0"]][1] == ValueQuadrant.SECONDARY  # high current, flat
    with session_scope(engine) as session:
        audits = session.scalar(select(func.count()).select_from(CustomerClassChange))
    assert audits == counts.changed == 12


def test_rerun_same_date_changes_nothing(engine: Engine) -> None:
    _seed(engine)
    classify_all(engine, as_of=AS_OF, now=NOW, run_id=None, dry_run=False)
    again = classify_all(engine, as_of=AS_OF, now=NOW, run_id=None, dry_run=False)
    assert again.changed == 0
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(CustomerClassChange)) == 12


def test_dry_run_writes_nothing(engine: Engine) -> None:
    _seed(engine)
    counts = classify_all(engine, as_of=AS_OF, now=NOW, run_id=None, dry_run=True)
    assert counts.changed == 12 and counts.by_class["A"] == 3
    assert all(c == (None, None) or c[0] == "A" for c in _classes(engine).values())
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(CustomerClassChange)) == 0
