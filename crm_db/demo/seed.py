"""``seed_demo``: fill an empty CRM database with the deterministic demo company.

Same options, same database backend -> the same rows, byte for byte. Customers are generated
and written in chunks (50,000 by default) together with their transactions and contact history,
so memory stays bounded at any scale; complaints, surveys and targets follow company-wide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from crm_db.defaults import CALENDAR_CODE, ensure_default_policies
from crm_db.demo.complaints import COMPLAINT_COLUMNS, EVENT_COLUMNS, generate_complaints
from crm_db.demo.contacts import CONTACT_COLUMNS, generate_contacts
from crm_db.demo.customers import (
    CUSTOMER_COLUMNS,
    PinnedCustomers,
    generate_customers,
    plan_pins,
)
from crm_db.demo.loader import (
    PostgresLoader,
    SqliteLoader,
    open_loader,
    repair_indexes,
    table_names,
)
from crm_db.demo.organisation import (
    BRANCH_COLUMNS,
    REGION_COLUMNS,
    STAFF_COLUMNS,
    OrgPlan,
    plan_organisation,
)
from crm_db.demo.population import Population
from crm_db.demo.surveys import (
    CAMPAIGN_COLUMNS,
    INVITATION_COLUMNS,
    RESPONSE_COLUMNS,
    generate_surveys,
)
from crm_db.demo.targets import (
    TARGET_COLUMNS,
    VERSION_COLUMNS,
    Tally,
    plan_targets,
    target_version_rows,
)
from crm_db.demo.timeline import DEMO_AS_OF, DayText, Timeline
from crm_db.demo.transactions import TRANSACTION_COLUMNS, generate_transactions, pump_prices
from crm_db.models import BusinessCalendar
from tasks.common.calendars import load_business_hours
from tasks.complaints.policies import load_policies
from tasks.complaints.rules.sla import Policy
from tasks.rules.business_time import BusinessHours

DEFAULT_CHUNK: Final = 50_000
# Configuration, not data: present after `ensure_default_policies`, so they do not make a
# database "non-empty" for seeding.
CONFIG_TABLES: Final = frozenset(
    {
        "policy_settings",
        "revisit_policies",
        "sla_policies",
        "survey_policies",
        "business_calendars",
        "calendar_days",
    }
)
# The big tables whose secondary indexes are rebuilt after the load (see loader.py).
REBUILT_TABLES: Final = ("customers", "transactions", "contact_history")
# Tables whose PostgreSQL sequences are moved past the ids written (explicit ids bypass them).
EXPLICIT_ID_TABLES: Final = (
    "regions",
    "branches",
    "staff",
    "customers",
    "contact_history",
    "complaints",
    "complaint_events",
    "survey_campaigns",
    "survey_invitations",
    "survey_responses",
    "target_versions",
    "targets",
    "transactions",
)


class DemoDatabaseNotEmptyError(RuntimeError):
    """The database already holds CRM data and no reset was asked for."""


@dataclass(frozen=True)
class SeedOptions:
    customers: int = 10_000
    seed: int = 42
    as_of: date = DEMO_AS_OF
    transactions_per_customer: int = 10
    reset: bool = False
    chunk_size: int = DEFAULT_CHUNK
    rebuild_indexes: bool = True  # drop + recreate the big tables' indexes around the load

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError("customers must be at least 1")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if self.transactions_per_customer < 0:
            raise ValueError("transactions_per_customer must be >= 0")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")


@dataclass(frozen=True)
class SeedProgress:
    """Reported after every chunk and phase: rows written so far, per table and in total."""

    phase: str
    customers_done: int
    customers_total: int
    rows: Mapping[str, int]
    elapsed_s: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_s(self) -> float:
        return self.total_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


ProgressCallback = Callable[[SeedProgress], None]


@dataclass
class SeedReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # generation + writing per table
    index_seconds: float = 0.0  # rebuilding indexes and the final commit
    index_detail: dict[str, float] = field(default_factory=dict)  # seconds per index
    total_seconds: float = 0.0
    defaults: dict[str, int] = field(default_factory=dict)
    reset: dict[str, int] = field(default_factory=dict)  # rows deleted per table

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def data_table_counts(engine: Engine) -> dict[str, int]:
    """Tables (other than configuration) that hold any row: name -> 1 (existence only)."""
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for table in table_names():
            if table in CONFIG_TABLES:
                continue
            if connection.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None:
                found[table] = 1
    return found


def reset_database(engine: Engine) -> dict[str, int]:
    """Delete every row of every CRM table (configuration included); returns rows deleted."""
    tables = table_names()
    deleted: dict[str, int] = {}
    with engine.connect() as connection:
        for table in tables:
            deleted[table] = int(
                connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            )
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        return deleted
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        assert db is not None
        db.commit()
        db.isolation_level = None
        # Foreign keys off (outside a transaction, as SQLite requires): the tables reference
        # each other in a cycle, and without them DELETE takes SQLite's truncate fast path.
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN IMMEDIATE")
        for table in reversed(tables):
            db.execute(f"DELETE FROM {table}")
        db.execute("COMMIT")
    finally:
        raw.invalidate()
    return deleted


class _Clock:
    def __init__(self, report: SeedReport) -> None:
        self.report = report
        self.start = time.perf_counter()
        self.mark = self.start

    def lap(self, table: str, rows: int) -> None:
        now = time.perf_counter()
        self.report.seconds[table] = self.report.seconds.get(table, 0.0) + now - self.mark
        self.report.rows[table] = self.report.rows.get(table, 0) + rows
        self.mark = now

    def skip(self) -> float:
        now = time.perf_counter()
        spent, self.mark = now - self.mark, now
        return spent

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@dataclass(frozen=True)
class _PolicyLookups:
    sla: list[Policy]
    calendar_id: int | None
    hours: BusinessHours


def _policy_lookups(engine: Engine) -> _PolicyLookups:
    with Session(engine) as session:
        sla = load_policies(session)
        calendar_id = session.scalar(
            select(BusinessCalendar.id).where(BusinessCalendar.code == CALENDAR_CODE)
        )
        hours = load_business_hours(session, CALENDAR_CODE)
    return _PolicyLookups(sla, calendar_id, hours)


@dataclass
class _Run:
    """One seed in progress: the plan, the loader, the clock and what was written so far."""

    options: SeedOptions
    loader: SqliteLoader | PostgresLoader
    clock: _Clock
    report: SeedReport
    progress: ProgressCallback | None
    timeline: Timeline
    org: OrgPlan
    days: DayText
    tally: Tally
    population: Population = field(default_factory=Population)

    def tell(self, phase: str, done: int) -> None:
        if self.progress is not None:
            self.progress(
                SeedProgress(
                    phase, done, self.options.customers, dict(self.report.rows), self.clock.elapsed
                )
            )

    def write(self, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self.loader.write(table, columns, rows)
        self.clock.lap(table, len(rows))

    def organisation(self, calendar_id: int | None) -> None:
        org = self.org
        # Managers are set after the staff exist: regions/branches and staff reference each
        # other, and PostgreSQL checks foreign keys at the end of each COPY.
        self.write(
            "regions", REGION_COLUMNS, [(*r[:3], None, calendar_id) for r in org.region_rows]
        )
        self.write("branches", BRANCH_COLUMNS, [(*b[:4], None) for b in org.branch_rows])
        self.loader.write("staff", STAFF_COLUMNS, org.staff_rows)
        self.loader.execute(
            "UPDATE regions SET manager_id = %s WHERE id = %s",
            [(r[3], r[0]) for r in org.region_rows],
        )
        self.loader.execute(
            "UPDATE branches SET manager_id = %s WHERE id = %s",
            [(b[4], b[0]) for b in org.branch_rows],
        )
        self.clock.lap("staff", len(org.staff_rows))

    def customer_chunks(self, pins: PinnedCustomers, prices: npt.NDArray[np.int64]) -> None:
        options, seed, timeline = self.options, self.options.seed, self.timeline
        contact_id = 1
        for chunk, first in enumerate(range(1, options.customers + 1, options.chunk_size)):
            count = min(options.chunk_size, options.customers + 1 - first)
            people = generate_customers(
                seed, chunk, first, count, self.org, pins, timeline, self.days
            )
            self.write("customers", CUSTOMER_COLUMNS, people.rows)
            self.population.add(people)
            self.tally.add_customers(people, timeline)

            sales = generate_transactions(
                seed, chunk, people, options.transactions_per_customer, self.org, timeline, prices
            )
            self.loader.write("transactions", TRANSACTION_COLUMNS, sales.rows(self.days))
            self.tally.add_transactions(sales, people, timeline)
            self.clock.lap("transactions", len(sales))

            contacts = generate_contacts(
                seed, chunk, contact_id, people, self.org, timeline, self.days
            )
            contact_id += len(contacts)
            self.write("contact_history", CONTACT_COLUMNS, contacts.rows)
            self.loader.checkpoint()
            self.clock.lap("contact_history", 0)  # the commit is part of writing the chunk
            self.tell("customers", first + count - 1)

    def activity(self, lookups: _PolicyLookups) -> None:
        seed, timeline = self.options.seed, self.timeline
        everyone = self.population.freeze()
        complaints = generate_complaints(
            seed, everyone, self.org, timeline, lookups.sla, lookups.hours, lookups.calendar_id
        )
        self.write("complaints", COMPLAINT_COLUMNS, complaints.complaints)
        self.write("complaint_events", EVENT_COLUMNS, complaints.events)
        surveys = generate_surveys(
            seed, everyone, complaints.customer_ids, complaints.resolved, timeline
        )
        self.write("survey_campaigns", CAMPAIGN_COLUMNS, surveys.campaigns)
        self.write("survey_invitations", INVITATION_COLUMNS, surveys.invitations)
        self.write("survey_responses", RESPONSE_COLUMNS, surveys.responses)
        self.write("target_versions", VERSION_COLUMNS, target_version_rows(timeline))
        self.write("targets", TARGET_COLUMNS, plan_targets(seed, self.tally, self.org, timeline))
        self.tell("activity", self.options.customers)

    def finish(self) -> None:
        self.report.index_detail = self.loader.restore_indexes()
        if isinstance(self.loader, PostgresLoader):
            self.loader.reset_sequences(EXPLICIT_ID_TABLES)
        start = time.perf_counter()
        self.loader.commit()
        self.report.index_detail["(commit)"] = time.perf_counter() - start
        self.report.index_seconds = self.clock.skip()
        self.tell("indexes", self.options.customers)


def seed_demo(
    engine: Engine, options: SeedOptions, progress: ProgressCallback | None = None
) -> SeedReport:
    """Seed the demo company into ``engine``'s (migrated) database; see the module docstring.

    Raises ``DemoDatabaseNotEmptyError`` if CRM data exists and ``options.reset`` is false.
    """
    report = SeedReport()
    clock = _Clock(report)
    occupied = data_table_counts(engine)
    if occupied and not options.reset:
        raise DemoDatabaseNotEmptyError(
            "the database already holds CRM data (in "
            + ", ".join(sorted(occupied))
            + "); seeding would mix demo rows with it. Use --reset to delete all CRM rows first."
        )
    if options.reset:
        report.reset = reset_database(engine)
    repair_indexes(engine)

    timeline = Timeline(options.as_of)
    with Session(engine) as session:
        report.defaults = ensure_default_policies(session, now=timeline.reference)
        session.commit()
    lookups = _policy_lookups(engine)
    clock.skip()

    org = plan_organisation(options.seed, options.customers, timeline)
    loader = open_loader(engine)
    run = _Run(
        options=options,
        loader=loader,
        clock=clock,
        report=report,
        progress=progress,
        timeline=timeline,
        org=org,
        days=DayText(timeline.history_start_ord - 1, timeline.as_of_ord + 400),
        tally=Tally(len(timeline.months), org.branch_count, org.staff_count),
    )
    try:
        loader.begin()
        run.organisation(lookups.calendar_id)
        if options.rebuild_indexes:
            loader.drop_indexes(REBUILT_TABLES)
        run.tell("organisation", 0)
        run.customer_chunks(
            plan_pins(options.seed, options.customers), pump_prices(options.seed, timeline)
        )
        run.activity(lookups)
        run.finish()
    except BaseException:
        loader.abort()
        raise
    finally:
        loader.close()
    report.total_seconds = clock.elapsed
    return report


__all__ = [
    "DEFAULT_CHUNK",
    "DemoDatabaseNotEmptyError",
    "SeedOptions",
    "SeedProgress",
    "SeedReport",
    "reset_database",
    "seed_demo",
]
