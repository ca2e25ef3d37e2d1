"""IO tasks of the healthcheck: probe the CRM database and the SMTP server, report facts.

Judging the facts (what is a warning) is ``flows.healthcheck_rules``; these tasks only look.
Both open their own connections from the settings and return small frozen reports.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from datetime import date, datetime
from functools import partial

import aiosmtplib
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.orm import Session

from crm_core.masking import mask_text
from crm_core.settings import Settings, get_settings
from crm_db import migrate
from crm_db.enums import OutboxStatus
from crm_db.models import Base, OutboxMessage
from crm_db.session import make_engine
from crm_db.types import utcnow
from flows.healthcheck_rules import KEY_TABLES, DatabaseReport, SmtpReport
from tasks.common.calendars import last_covered_days
from tasks.mail.classify import SendFailure
from tasks.mail.smtp_pool import SmtpConfigurationError, SmtpTarget, open_connection

# Long enough for a relay across a WAN, short enough that an hourly check never hangs.
SMTP_PROBE_TIMEOUT_S = 5.0


def _database_location(engine: Engine) -> str:
    """Where the database is, never who logs in: the file for SQLite, host:port/name otherwise."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return f"{url.host or 'localhost'}:{url.port or ''}/{url.database or ''}"


@task(name="check-database", cache_policy=NO_CACHE)
def check_database() -> DatabaseReport:
    """Connect, compare the Alembic revision with the code's head, count rows of key tables.

    Raises when the database cannot be reached at all: then no flow can run and the run must
    fail (and alert), not report.
    """
    engine = make_engine(create=False)
    try:
        started = time.perf_counter()
        with engine.connect() as connection:
            connection.execute(select(1))
        latency_ms = (time.perf_counter() - started) * 1000
        revision = migrate.current_revision(engine)
        head = migrate.head_revision()
        present = set(inspect(engine).get_table_names())
        counts: dict[str, int] = {}
        outbox: dict[str, int] = {}
        oldest_due: float | None = None
        with engine.connect() as connection:
            for name in KEY_TABLES:
                if name in present:
                    table = Base.metadata.tables[name]
                    counts[name] = int(
                        connection.execute(select(func.count()).select_from(table)).scalar_one()
                    )
            if OutboxMessage.__tablename__ in present:
                by_status = connection.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                )
                outbox = {str(status): int(n) for status, n in by_status}
                oldest_due = _oldest_due_s(connection)
        return DatabaseReport(
            backend=engine.dialect.name,
            location=_database_location(engine),
            revision=revision,
            head=head,
            row_counts=counts,
            missing_tables=[name for name in KEY_TABLES if name not in present],
            outbox_by_status=outbox,
            latency_ms=latency_ms,
            oldest_due_s=oldest_due,
        )
    finally:
        engine.dispose()


def _oldest_due_s(connection: Connection) -> float | None:
    """Seconds since the longest-waiting due outbox row came due (pending past its
    ``next_attempt_at``, or sending under an expired lease), or None when none is due."""
    now = utcnow()
    columns = OutboxMessage.__table__.c
    pending = select(func.min(columns.next_attempt_at)).where(
        columns.status == OutboxStatus.PENDING, columns.next_attempt_at <= now
    )
    stale = select(func.min(columns.lease_until)).where(
        columns.status == OutboxStatus.SENDING, columns.lease_until <= now
    )
    since = [value for value in (connection.scalar(pending), connection.scalar(stale)) if value]
    if not since:
        return None
    oldest: datetime = min(since)
    return float((now - oldest).total_seconds())


@task(name="check-calendars", cache_policy=NO_CACHE)
def check_calendars() -> dict[str, date | None]:
    """The last day with known public holidays, per business calendar that has them."""
    engine = make_engine(create=False)
    try:
        with Session(engine) as session:
            return last_covered_days(session)
    finally:
        engine.dispose()


async def _probe_smtp(settings: Settings, timeout_s: float) -> SmtpReport:
    """Open a connection exactly as delivery does (``smtp_pool.open_connection``: same TLS
    mode, same CA file, STARTTLS required), without logging in."""
    target = replace(SmtpTarget.from_settings(settings), timeout_s=timeout_s)
    implicit = settings.smtp_tls == "implicit"
    starttls = settings.smtp_tls == "starttls"
    report = partial(
        SmtpReport,
        endpoint=f"{settings.smtp_host}:{settings.smtp_port}",
        tls_mode=settings.smtp_tls,
        auth_configured=settings.smtp_user is not None,
    )
    started = time.perf_counter()
    try:
        # The machine's short name: getfqdn() would ask DNS, which may hang on a closed network.
        opened = await open_connection(
            target, authenticate=False, local_name=socket.gethostname() or "localhost"
        )
    except SmtpConfigurationError as exc:
        # Reachable, but unusable as configured: say which step and why, in one line.
        return report(
            reachable=True,
            ehlo_ok=True,  # it answered; the step that failed is named below
            starttls_offered=False if exc.reason == "no_starttls" else (True if starttls else None),
            tls_ok=False if exc.reason in ("tls", "tls_mode") else None,
            error=mask_text(str(exc)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    if isinstance(opened, SendFailure):
        return report(
            reachable=False,
            error=mask_text(opened.describe()),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    auth_offered: bool | None = None
    error: str | None = None
    try:
        if opened.is_ehlo_or_helo_needed:
            await opened.ehlo()
        auth_offered = opened.supports_extension("auth")
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = mask_text(str(exc))
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            await opened.quit()
        except (aiosmtplib.SMTPException, OSError):
            opened.close()
    return report(
        reachable=True,
        ehlo_ok=error is None,
        starttls_offered=True if starttls else None,
        tls_ok=True if (implicit or starttls) else None,
        auth_offered=auth_offered,
        error=error,
        latency_ms=latency_ms,
    )


@task(name="check-smtp", cache_policy=NO_CACHE)
def check_smtp(timeout_s: float = SMTP_PROBE_TIMEOUT_S) -> SmtpReport:
    """TCP connect and EHLO (plus the TLS step of the configured mode); never logs in.

    Returns a report even when the server is down; only a bug raises.
    """
    settings = get_settings()
    # The flow is synchronous, so this task owns its short-lived event loop.
    return asyncio.run(_probe_smtp(settings, min(timeout_s, settings.smtp_timeout_s)))
