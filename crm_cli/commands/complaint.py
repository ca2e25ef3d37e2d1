"""``crm complaint open`` (intake, with the receipt and the senior-management alert queued in
its transaction), ``crm complaint ack|start|wait|resume|resolve|verify|close|reopen|assign ID``
(lifecycle changes, each one event written with the row it changes) and ``crm complaint
recompute ID|--all-open`` (the SLA targets in force re-copied onto open complaints)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import ComplaintSource, EventSource, Severity
from crm_db.models import Complaint, Customer, Staff
from crm_db.session import make_engine, session_scope
from crm_db.types import utcnow
from tasks.complaints.intake import open_with_reference, queue_intake_notices, recompute
from tasks.complaints.lifecycle import (
    ComplaintNotFoundError,
    Intake,
    apply_event,
    assign,
)
from tasks.complaints.rules.lifecycle import OPEN_STATES, Transition
from tasks.complaints.rules.sla import PolicyNotFoundError

complaint_app = typer.Typer(help="Customer complaints (四个不漏).", no_args_is_help=True)

AtOption = Annotated[
    datetime | None,
    typer.Option(help="when it happened, ISO-8601 with an offset (default: now)"),
]
ActorOption = Annotated[str | None, typer.Option(help="the staff member's external id")]
NoteOption = Annotated[str | None, typer.Option(help="an internal note (never shown to customers)")]


class _Refused(Exception):
    pass


def _staff_id(session: Session, external_id: str | None) -> int | None:
    if external_id is None:
        return None
    staff_id = session.scalar(select(Staff.id).where(Staff.external_id == external_id))
    if staff_id is None:
        raise _Refused(f"no staff member with external id {external_id!r}")
    return staff_id


def _complaint_id(session: Session, ref: str) -> int:
    """A complaint by its reference number (external id) or its numeric id."""
    found = session.scalar(select(Complaint.id).where(Complaint.external_id == ref))
    if found is None and ref.isdigit():
        found = session.scalar(select(Complaint.id).where(Complaint.id == int(ref)))
    if found is None:
        raise _Refused(f"no complaint {ref}")
    return found


def _when_or_exit(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        typer.echo("error: --at needs an offset, e.g. 2026-12-07T09:30:00+08:00", err=True)
        raise typer.Exit(1)
    return at


Write = Callable[[Session, int, int | None, int | None], Complaint]


def _run(ref: str, actor: str | None, write: Write, other_staff: str | None = None) -> None:
    engine = make_engine()
    try:
        # Look-ups first, in their own read: the write transaction must start with its lock.
        with Session(engine) as session:
            complaint_id = _complaint_id(session, ref)
            actor_id = _staff_id(session, actor)
            other_id = _staff_id(session, other_staff)
        with session_scope(engine) as session:
            complaint = write(session, complaint_id, actor_id, other_id)
            line = f"complaint {complaint.external_id}: {complaint.status.value}"
    except (_Refused, ComplaintNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(line)


def _transition_command(transition: Transition, summary: str) -> None:
    def command(
        complaint: Annotated[str, typer.Argument(help="reference number or id")],
        at: AtOption = None,
        actor: ActorOption = None,
        note: NoteOption = None,
    ) -> None:
        when = _when_or_exit(at)

        def write(
            session: Session, complaint_id: int, actor_id: int | None, _: int | None
        ) -> Complaint:
            return apply_event(
                session, complaint_id, transition, when, actor_id, EventSource.CLI, note
            )

        _run(complaint, actor, write)

    command.__doc__ = summary
    complaint_app.command(transition.value)(command)


for _transition, _summary in (
    (Transition.ACK, "First response: the complaint is acknowledged."),
    (Transition.START, "Work starts on the complaint."),
    (Transition.WAIT, "Waiting on the customer (the resolution clock pauses)."),
    (Transition.RESUME, "The customer answered (the resolution clock runs again)."),
    (Transition.RESOLVE, "The problem is solved."),
    (Transition.VERIFY, "复查: the result is re-checked with the customer."),
    (Transition.CLOSE, "Close a verified complaint."),
    (Transition.REOPEN, "Not solved after all: back to in progress."),
):
    _transition_command(_transition, _summary)


@complaint_app.command("assign")
def assign_command(
    complaint: Annotated[str, typer.Argument(help="reference number or id")],
    to: Annotated[str, typer.Option("--to", help="the new owner's staff external id")],
    at: AtOption = None,
    actor: ActorOption = None,
    note: NoteOption = None,
) -> None:
    """Give the complaint a new owner."""

    when = _when_or_exit(at)

    def write(
        session: Session, complaint_id: int, actor_id: int | None, assignee: int | None
    ) -> Complaint:
        assert assignee is not None  # --to is required and resolved before
        return assign(session, complaint_id, assignee, when, actor_id, EventSource.CLI, note)

    _run(complaint, actor, write, other_staff=to)


@complaint_app.command("open")
def open_command(
    customer: Annotated[str, typer.Option(help="the customer's external id")],
    severity: Annotated[Severity, typer.Option(help="low, normal, high or critical")],
    category: Annotated[str, typer.Option(help="the category (reports group by it)")],
    title: Annotated[
        str, typer.Option(help="the issue as the customer reads it (receipt, care emails)")
    ],
    description: Annotated[
        str, typer.Option(help="internal description (never shown to customers)")
    ] = "",
    product: Annotated[str | None, typer.Option(help="the product concerned")] = None,
    owner: Annotated[
        str | None, typer.Option(help="the owner's staff external id (default: unassigned)")
    ] = None,
    at: AtOption = None,
    actor: ActorOption = None,
) -> None:
    """Record a new complaint: the SLA targets in force are copied onto it, the customer gets
    a receipt and senior management hears of critical ones (and A-class customers' high ones)."""
    when = _when_or_exit(at)
    for name, value, limit in (("category", category, 80), ("title", title, 200)):
        if not value.strip() or len(value) > limit or not value.isprintable():
            typer.echo(
                f"error: --{name} must be one line of 1 to {limit} printable characters",
                err=True,
            )
            raise typer.Exit(1)
    engine = make_engine()
    try:
        with Session(engine) as session:
            found = session.execute(
                select(Customer.id, Customer.branch_id).where(Customer.external_id == customer)
            ).one_or_none()
            if found is None:
                raise _Refused(f"no customer with external id {customer!r}")
            owner_id = _staff_id(session, owner)
            actor_id = _staff_id(session, actor)
        with session_scope(engine) as session:
            complaint = open_with_reference(
                session,
                when,
                lambda reference: Intake(
                    external_id=reference,
                    customer_id=found.id,
                    branch_id=found.branch_id,
                    category=category.strip(),
                    severity=severity,
                    received_at=when,
                    description=description,
                    customer_title=title.strip(),
                    product=product,
                    assignee_id=owner_id,
                    source=ComplaintSource.CLI,
                ),
                actor_id=actor_id,
                source=EventSource.CLI,
            )
            notices = queue_intake_notices(session, [complaint], now=utcnow())
            line = f"complaint {complaint.external_id}: {complaint.status.value}; {notices.line()}"
    except (_Refused, PolicyNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(line)


@complaint_app.command("recompute")
def recompute_command(
    complaint: Annotated[
        str | None, typer.Argument(help="reference number or id (or --all-open)")
    ] = None,
    all_open: Annotated[bool, typer.Option("--all-open", help="every open complaint")] = False,
    at: AtOption = None,
    actor: ActorOption = None,
) -> None:
    """Copy the SLA targets in force onto open complaints (after editing a policy) and
    re-derive their due times; one recompute event each that changed."""
    if (complaint is None) == (not all_open):
        typer.echo("error: give a complaint ID or --all-open (not both)", err=True)
        raise typer.Exit(2)
    when = _when_or_exit(at)
    engine = make_engine()
    changed = seen = 0
    try:
        with Session(engine) as session:
            actor_id = _staff_id(session, actor)
            if complaint is not None:
                ids = [_complaint_id(session, complaint)]
            else:
                ids = list(
                    session.scalars(
                        select(Complaint.id)
                        .where(Complaint.status.in_(sorted(OPEN_STATES)))
                        .order_by(Complaint.id)
                    )
                )
        for start in range(0, len(ids), 500):  # one transaction per chunk
            with session_scope(engine) as session:
                for complaint_id in ids[start : start + 500]:
                    seen += 1
                    changed += recompute(
                        session, complaint_id, at=when, actor_id=actor_id, source=EventSource.CLI
                    )
    except (_Refused, ComplaintNotFoundError, PolicyNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(
        f"recomputed {changed} of {seen} complaint(s); {seen - changed} already current or closed"
    )


@complaint_app.command("report")
def report_command(
    month: Annotated[str, typer.Option(help="the month, YYYY-MM (in CRM_TIMEZONE)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="compute and print, queue nothing")
    ] = False,
) -> None:
    """Queue the monthly complaint feedback report (四个不漏): the product and operations
    departments get their categories, each region manager their region."""
    from crm_core.settings import get_settings
    from tasks.complaints.feedback_report import queue_feedback_reports
    from tasks.complaints.rules.feedback_report import month_bounds

    zone = get_settings().tz
    try:
        bounds = month_bounds(month, zone)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = make_engine()
    try:
        with session_scope(engine) as session:
            run = queue_feedback_reports(session, bounds, zone=zone, now=utcnow(), dry_run=dry_run)
    finally:
        engine.dispose()
    typer.echo(("dry run: " if dry_run else "") + run.line())


def register(app: typer.Typer) -> None:
    app.add_typer(complaint_app, name="complaint")
