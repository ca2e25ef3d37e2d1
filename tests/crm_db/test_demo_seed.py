"""The demo seed on real SQLite files and the real PostgreSQL server: shape, integrity,
realism, determinism, refusal and reset, and the ``crm demo`` CLI."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from crm_core.settings import reset_settings_cache
from crm_db import migrate
from crm_db.defaults import ensure_default_policies
from crm_db.demo import (
    DEMO_AS_OF,
    DemoDatabaseNotEmptyError,
    SeedOptions,
    SeedProgress,
    database_fingerprint,
    seed_demo,
)
from crm_db.enums import ComplaintStatus, StaffRole, TargetMetric
from crm_db.models import (
    Branch,
    Complaint,
    ComplaintEvent,
    Customer,
    Region,
    Staff,
    SurveyInvitation,
    SurveyResponse,
    Target,
    Transaction,
)
from crm_db.session import make_engine

CUSTOMERS = 300
SMALL = SeedOptions(customers=CUSTOMERS, seed=7, chunk_size=120)  # three chunks


def _index_definitions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
        else:
            query = (
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "ORDER BY indexname"
            )
        return [(str(a), str(b)) for a, b in conn.execute(text(query))]


def _foreign_keys(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return sorted(
                (table, str(row[2]))
                for table in ("customers", "transactions", "contact_history")
                for row in conn.execute(text(f"PRAGMA foreign_key_list({table})"))
            )
        query = (
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' ORDER BY 1, 2"
        )
        return [(str(a), str(b)) for a, b in conn.execute(text(query))]


def test_seed_shape_and_integrity(engine: Engine) -> None:
    indexes_before = _index_definitions(engine)
    keys_before = _foreign_keys(engine)
    events: list[SeedProgress] = []
    report = seed_demo(engine, SMALL, progress=events.append)

    assert report.rows["customers"] == CUSTOMERS
    assert report.rows["transactions"] == CUSTOMERS * SMALL.transactions_per_customer
    assert [e.customers_done for e in events if e.phase == "customers"] == [120, 240, 300]
    assert events[-1].total_rows == report.total_rows
    # The indexes (and on PostgreSQL the foreign keys) dropped for the load are back, verbatim.
    assert _index_definitions(engine) == indexes_before
    assert _foreign_keys(engine) == keys_before

    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == CUSTOMERS
        assert session.scalar(select(func.count()).select_from(Transaction)) == 3000
        for model, column in ((Customer, "branch_id"), (Customer, "account_manager_id")):
            missing = session.scalar(
                select(func.count()).select_from(model).where(getattr(model, column).is_(None))
            )
            assert missing == 0, column
        # Every customer's station and manager exist and belong together.
        mismatched = session.scalar(
            select(func.count())
            .select_from(Customer)
            .join(Staff, Staff.id == Customer.account_manager_id)
            .where(Staff.branch_id != Customer.branch_id)
        )
        assert mismatched == 0
        assert session.scalar(select(func.count()).select_from(Region)) == 6
        assert all(r.manager_id for r in session.scalars(select(Region)))
        assert all(b.manager_id for b in session.scalars(select(Branch)))

        # Every reporting chain ends at the top (an executive with no manager), without cycles.
        staff = {s.id: s for s in session.scalars(select(Staff))}
        for person in staff.values():
            seen: set[int] = set()
            current = person
            while current.manager_id is not None:
                assert current.id not in seen, f"cycle at staff {current.id}"
                seen.add(current.id)
                current = staff[current.manager_id]
            assert current.role is StaffRole.EXECUTIVE
        roles = {s.role for s in staff.values()}
        assert roles == set(StaffRole)
        leavers = [s for s in staff.values() if not s.active]
        assert leavers and all(s.left_on is not None and s.left_on < DEMO_AS_OF for s in leavers)
        owned_by_leavers = session.scalar(
            select(func.count())
            .select_from(Customer)
            .join(Staff, Staff.id == Customer.account_manager_id)
            .where(Staff.active.is_(False))
        )
        assert owned_by_leavers and owned_by_leavers > 0

    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []


def test_seed_content_is_realistic(engine: Engine) -> None:
    seed_demo(engine, SMALL)
    with Session(engine) as session:
        statuses = set(session.scalars(select(Complaint.status).distinct()))
        assert statuses == set(ComplaintStatus)
        for complaint in session.scalars(select(Complaint)):
            history = list(
                session.scalars(
                    select(ComplaintEvent)
                    .where(ComplaintEvent.complaint_id == complaint.id)
                    .order_by(ComplaintEvent.at, ComplaintEvent.id)
                )
            )
            assert history[0].to_status is ComplaintStatus.NEW
            assert history[-1].to_status is complaint.status
            assert complaint.received_at == history[0].at
            assert complaint.received_at < datetime(2026, 11, 23, tzinfo=UTC)
        assert session.scalar(
            select(func.count()).select_from(Complaint).where(Complaint.assignee_id.is_(None))
        )
        assert len(set(session.scalars(select(Complaint.severity)))) == 4

        # Classes are for the classification flow, except the pinned few (with a reason).
        pinned = list(session.scalars(select(Customer).where(Customer.abc_pinned.is_(True))))
        assert 3 <= len(pinned) <= 12
        assert all(c.abc_class is not None and c.abc_pinned_reason for c in pinned)
        unpinned_classes = session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.abc_pinned.is_(False), Customer.abc_class.is_not(None))
        )
        assert unpinned_classes == 0
        customers = list(session.scalars(select(Customer)))
        assert any(c.email is None for c in customers)
        people = [c for c in customers if c.card_type.value == "personal" and c.locale == "zh-CN"]
        assert people and all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", c.name) for c in people)
        companies = [
            c for c in customers if c.card_type.value != "personal" and c.locale == "zh-CN"
        ]
        assert companies and all(c.name.endswith(("公司", "车队")) for c in companies)
        assert any(c.locale == "en" for c in customers)
        assert {c.card_type.value for c in customers} == {"personal", "company", "fleet"}
        assert all(c.created_at.tzinfo is not None for c in customers)

        window = session.execute(
            select(func.min(Transaction.occurred_on), func.max(Transaction.occurred_on))
        ).one()
        assert window == (date(2025, 10, 1), date(2026, 11, 22))
        # Purchases at 6.5-8.5 CNY/L; recharges carry no volume.
        price = session.execute(
            select(func.min(Transaction.amount_fen * 1000 / Transaction.volume_ml)).where(
                Transaction.kind == "purchase"
            )
        ).scalar_one()
        assert 650 <= price <= 850
        assert (
            session.scalar(
                select(func.max(Transaction.volume_ml)).where(Transaction.kind == "recharge")
            )
            == 0
        )

        invitation_states = set(session.scalars(select(SurveyInvitation.status).distinct()))
        assert {"responded", "expired"} <= {s.value for s in invitation_states}
        scores = list(session.scalars(select(SurveyResponse.score)))
        assert scores and all(0 <= s <= 10 for s in scores)


def test_revenue_is_skewed(engine: Engine) -> None:
    seed_demo(engine, SMALL)
    with Session(engine) as session:
        revenue = {
            customer_id: int(total)
            for customer_id, total in session.execute(
                select(Transaction.customer_id, func.sum(Transaction.amount_fen))
                .where(Transaction.kind == "purchase")
                .group_by(Transaction.customer_id)
            )
        }
    ranked = sorted((revenue.get(i, 0) for i in range(1, CUSTOMERS + 1)), reverse=True)
    top = sum(ranked[: CUSTOMERS // 5])
    assert top / sum(ranked) > 0.6


def test_targets_cover_every_metric_with_the_edge_cases(engine: Engine) -> None:
    seed_demo(engine, SMALL)
    with Session(engine) as session:
        rows = session.execute(select(Target.period, Target.scope, Target.scope_id, Target.metric))
        by_scope: dict[tuple[str, int], set[tuple[str, TargetMetric]]] = {}
        for period, scope, scope_id, metric in rows:
            by_scope.setdefault((scope.value, scope_id), set()).add((period, metric))
        months = {p for (p, _) in by_scope[("region", 1)]}
        assert len(months) == 14 and max(months) == "2026-11" and min(months) == "2025-10"
        for region_id in range(1, 7):
            assert {m for (_, m) in by_scope[("region", region_id)]} == set(TargetMetric)
        branch_ids = list(session.scalars(select(Branch.id)))
        without = [b for b in branch_ids if ("branch", b) not in by_scope]
        assert len(without) == 1  # one station has no targets at all
        opened = [
            b for b in branch_ids if {p for p, _ in by_scope.get(("branch", b), ())} == {"2026-11"}
        ]
        assert len(opened) == 1  # the new station: this month only, and no activity
        assert (
            session.scalar(
                select(func.count())
                .select_from(Transaction)
                .where(Transaction.branch_id == opened[0])
            )
            == 0
        )
        assert any(scope == "staff" for scope, _ in by_scope)


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    prints = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        engine = make_engine(f"sqlite:///{tmp_path / name}.sqlite3")
        migrate.upgrade(engine)
        seed_demo(engine, SeedOptions(customers=CUSTOMERS, seed=seed, chunk_size=120))
        prints.append(database_fingerprint(engine))
        engine.dispose()
    assert prints[0] == prints[1]
    assert prints[0] != prints[2]


def test_default_policies_alone_do_not_count_as_data(engine: Engine) -> None:
    with Session(engine) as session:
        ensure_default_policies(session)
        session.commit()
    report = seed_demo(engine, SMALL)
    assert report.rows["customers"] == CUSTOMERS
    assert set(report.defaults.values()) == {0}  # present already: kept as they were


def test_refuses_a_non_empty_database_and_reset_reseeds_identically(engine: Engine) -> None:
    seed_demo(engine, SMALL)
    first = database_fingerprint(engine)
    with pytest.raises(DemoDatabaseNotEmptyError, match="--reset"):
        seed_demo(engine, SMALL)
    assert database_fingerprint(engine) == first  # nothing was written

    report = seed_demo(engine, SeedOptions(customers=CUSTOMERS, seed=7, chunk_size=120, reset=True))
    assert report.reset["customers"] == CUSTOMERS
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == CUSTOMERS
    # Reset empties everything (policies too), so the reseed is the same database, byte for byte.
    assert database_fingerprint(engine) == first

    # New rows after a seed get fresh ids (PostgreSQL sequences moved past the explicit ids).
    with Session(engine) as session:
        region = Region(code="NEW", name="新片区")
        session.add(region)
        session.commit()
        assert region.id == 7


def test_cli_seed_refuse_reset_and_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crm_cli.commands.demo import DEFAULT_AS_OF
    from crm_cli.main import app

    assert date.fromisoformat(DEFAULT_AS_OF) == DEMO_AS_OF

    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    reset_settings_cache()
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0

    args = ["demo", "seed", "--customers", "200", "--seed", "3", "--transactions-per-customer", "5"]
    seeded = runner.invoke(app, args)
    assert seeded.exit_code == 0, seeded.output
    assert "as of 2026-11-23" in seeded.output
    assert "[customers] 200/200 customers" in seeded.output
    assert "done:" in seeded.output

    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "refused" in refused.output and "--reset" in refused.output

    again = runner.invoke(app, [*args, "--reset"])
    assert again.exit_code == 0, again.output
    assert "reset: deleted" in again.output

    bad = runner.invoke(app, [*args, "--reset", "--as-of", "23/11/2026"])
    assert bad.exit_code != 0

    engine = make_engine(url)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 200
        assert session.scalar(select(func.count()).select_from(Transaction)) == 1000
    expected = database_fingerprint(engine)
    engine.dispose()
    printed = runner.invoke(app, ["demo", "fingerprint"])
    assert printed.exit_code == 0
    assert printed.output.strip().splitlines()[-1] == expected


def test_as_of_the_first_of_a_month(sqlite_engine: Engine) -> None:
    """Nothing of the as-of month has happened yet: no transaction in it, and its targets are
    planned like the month before (not the one-unit floor)."""
    seed_demo(sqlite_engine, SeedOptions(customers=200, seed=1, as_of=date(2026, 3, 1)))
    with Session(sqlite_engine) as session:
        last = session.scalar(select(func.max(Transaction.occurred_on)))
        assert last == date(2026, 2, 28)
        revenue: dict[str, int] = {
            period: int(total)
            for period, total in session.execute(
                select(Target.period, func.sum(Target.value))
                .where(Target.scope == "region", Target.metric == TargetMetric.REVENUE_FEN)
                .group_by(Target.period)
            )
        }
        assert sorted(revenue)[0] == "2025-02" and sorted(revenue)[-1] == "2026-03"
        assert revenue["2026-03"] > 0.5 * revenue["2026-02"]


class _Interrupted(Exception):
    pass


def test_a_failed_seed_puts_the_dropped_indexes_back(engine: Engine) -> None:
    before = (_index_definitions(engine), _foreign_keys(engine))

    def interrupt(event: SeedProgress) -> None:
        if event.phase == "customers" and event.customers_done >= 240:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        seed_demo(engine, SMALL, progress=interrupt)
    assert (_index_definitions(engine), _foreign_keys(engine)) == before
    with Session(engine) as session:
        written = session.scalar(select(func.count()).select_from(Customer))
    # PostgreSQL seeds in one transaction; SQLite commits per chunk (then --reset cleans up).
    assert written == (0 if engine.dialect.name == "postgresql" else 240)


def test_an_index_lost_by_a_killed_seed_is_repaired(engine: Engine) -> None:
    before = _index_definitions(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_transactions_day_branch"))
    assert _index_definitions(engine) != before
    seed_demo(engine, SMALL)
    assert _index_definitions(engine) == before
