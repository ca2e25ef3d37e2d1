"""``crm complaint ack|start|wait|resume|resolve|verify|close|reopen|assign ID``: complaint
lifecycle changes from the command line; each is one event, written with the row it changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_db.enums import EventSource
from crm_db.models import Complaint, Staff
from crm_db.session import make_engine, session_scope
from crm_db.types import utcnow
from tasks.complaints.lifecycle import ComplaintNotFoundError, apply_event, assign
from tasks.complaints.rules.lifecycle import Transition

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


def register(app: typer.Typer) -> None:
    app.add_typer(complaint_app, name="complaint")
