"""IO tasks of the healthcheck: probe the CRM database and the SMTP server, report facts.

Judging the facts (what is a warning) is ``flows.healthcheck_rules``; these tasks only look.
Both open their own connections from the settings and return small frozen reports.
"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import date, datetime

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
    endpoint = f"{settings.smtp_host}:{settings.smtp_port}"
    auth_configured = settings.smtp_user is not None
    client = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        timeout=timeout_s,
        use_tls=settings.smtp_tls == "implicit",
        start_tls=False,  # done explicitly below, so each step is reported on its own
        # The machine's short name: getfqdn() would ask DNS, which may hang on a closed network.
        local_hostname=socket.gethostname() or "localhost",
    )
    started = time.perf_counter()
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return SmtpReport(
            endpoint=endpoint,
            tls_mode=settings.smtp_tls,
            reachable=False,
            auth_configured=auth_configured,
            error=mask_text(str(exc)),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    starttls_offered: bool | None = None
    tls_ok: bool | None = True if settings.smtp_tls == "implicit" else None
    ehlo_ok = False
    error: str | None = None
    try:
        await client.ehlo()
        ehlo_ok = True
        if settings.smtp_tls == "starttls":
            starttls_offered = client.supports_extension("starttls")
            if starttls_offered:
                # A real handshake: catches expired or mismatched certificates before a send does.
                try:
                    await client.starttls()
                    await client.ehlo()
                    tls_ok = True
                except (aiosmtplib.SMTPException, OSError) as exc:
                    tls_ok = False
                    error = mask_text(str(exc))
        auth_offered = client.supports_extension("auth") if tls_ok is not False else None
    except (aiosmtplib.SMTPException, OSError) as exc:
        error = mask_text(str(exc))
        auth_offered = None
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
    return SmtpReport(
        endpoint=endpoint,
        tls_mode=settings.smtp_tls,
        reachable=True,
        auth_configured=auth_configured,
        ehlo_ok=ehlo_ok,
        starttls_offered=starttls_offered,
        tls_ok=tls_ok,
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
