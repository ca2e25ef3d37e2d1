"""Deterministic demo data for a fuel-card company (燃油卡公司), from a few hundred customers to
millions: ``seed_demo(engine, SeedOptions(...))``, or ``crm demo seed`` on the command line."""

from crm_db.demo.fingerprint import database_fingerprint, table_fingerprints
from crm_db.demo.seed import (
    DemoDatabaseNotEmptyError,
    SeedOptions,
    SeedProgress,
    SeedReport,
    reset_database,
    seed_demo,
)
from crm_db.demo.timeline import DEMO_AS_OF

__all__ = [
    "DEMO_AS_OF",
    "DemoDatabaseNotEmptyError",
    "SeedOptions",
    "SeedProgress",
    "SeedReport",
    "database_fingerprint",
    "reset_database",
    "seed_demo",
    "table_fingerprints",
]
