"""``crm revisit done ID --outcome ...``: record a revisit's outcome from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from crm_db.enums import ContactOutcome
from crm_db.session import make_engine, session_scope
from crm_db.types import utcnow
from tasks.revisits.completion import RevisitOutcomeError, record_outcome

revisit_app = typer.Typer(help="Customer revisits.", no_args_is_help=True)


@revisit_app.command("done")
def done(
    revisit_id: Annotated[int, typer.Argument(help="the revisit's id (shown in the digest)")],
    outcome: Annotated[
        ContactOutcome, typer.Option(help="completed and issue_raised close the revisit")
    ] = ContactOutcome.COMPLETED,
    notes: Annotated[str | None, typer.Option(help="what was discussed (internal)")] = None,
    summary: Annotated[
        str | None,
        typer.Option(
            help="what was done, for the customer: a care alert's follow-up emails it to them"
        ),
    ] = None,
) -> None:
    """Record the outcome of revisit REVISIT_ID."""
    engine = make_engine(create=False)
    try:
        with session_scope(engine) as session:
            result = record_outcome(
                session, revisit_id, outcome, now=utcnow(), notes=notes, customer_summary=summary
            )
    except RevisitOutcomeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if result.already_recorded:
        typer.echo(f"revisit {revisit_id}: already recorded as {outcome.value}")
    elif result.closed:
        typer.echo(f"revisit {revisit_id}: done ({outcome.value}); next one follows the cadence")
    else:
        typer.echo(f"revisit {revisit_id}: attempt recorded ({outcome.value}); still open")


def register(app: typer.Typer) -> None:
    app.add_typer(revisit_app, name="revisit")
