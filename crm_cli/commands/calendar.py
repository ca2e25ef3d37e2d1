"""``crm calendar sync [--dry-run]``: public holidays and make-up days from ``chinese_calendar``.

Creates the ``CN`` calendar if the database has none (a production database gets no demo
seed), then syncs every calendar fed by the package (``holidays_from = 'chinese_calendar'``).
Run it after upgrading ``chinesecalendar`` (each November brings next year's schedule).
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from crm_core.settings import get_settings
from crm_db import calendar_sync
from crm_db.defaults import CALENDAR_CODE, default_calendar
from crm_db.models import BusinessCalendar
from crm_db.session import make_engine, session_scope

calendar_app = typer.Typer(help="Business calendars.", no_args_is_help=True)


def _describe(report: calendar_sync.SyncReport) -> list[str]:
    lines = [
        f"calendar {report.calendar}: chinese_calendar {report.package_version} covers "
        f"{report.first_year}-{report.last_year}; covered through "
        f"{report.covered_through.isoformat()}",
        f"  days inserted {report.inserted}, updated {report.updated}, "
        f"unchanged {report.unchanged}, kept (manual) {report.kept}",
    ]
    if report.newly_manual:
        lines.append(
            f"  {len(report.newly_manual)} days were edited by hand and are now manual: "
            + ", ".join(day.isoformat() for day in report.newly_manual)
        )
    if report.conflicts:
        lines.append(
            "  kept where the database differs from the package (delete the row and sync "
            "again to take the package's): "
            + ", ".join(day.isoformat() for day in report.conflicts)
        )
    return lines


@calendar_app.command("sync")
def sync(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="report what would change; write nothing")
    ] = False,
    calendar: Annotated[
        str | None, typer.Option(help="only this calendar's code (default: every synced one)")
    ] = None,
) -> None:
    """Write the package's holidays and make-up working days into calendar_days."""
    engine = make_engine(create=False)
    try:
        with session_scope(engine) as session:
            existing = session.scalar(
                select(BusinessCalendar.id).where(BusinessCalendar.code == CALENDAR_CODE)
            )
            if existing is None and calendar in (None, CALENDAR_CODE):
                typer.echo(
                    f"calendar {CALENDAR_CODE} " + ("would be created" if dry_run else "created")
                )
                session.add(default_calendar(get_settings().timezone))
                session.flush()
            reports = calendar_sync.sync_calendars(session, code=calendar, dry_run=dry_run)
            if dry_run:
                session.rollback()
    finally:
        engine.dispose()
    if not reports:
        typer.echo(
            "no calendar takes its holidays from chinese_calendar "
            "(business_calendars.holidays_from)" + (f" with code {calendar}" if calendar else "")
        )
        raise typer.Exit(1)
    for report in reports:
        for line in _describe(report):
            typer.echo(line)
    changed = any(report.changed for report in reports)
    if dry_run:
        typer.echo("dry run: nothing written" + ("" if changed else " (nothing to change)"))
    elif not changed:
        typer.echo("nothing changed")


def register(app: typer.Typer) -> None:
    app.add_typer(calendar_app, name="calendar")
