"""``crm customer reassign``: give customers a new account manager, audited, open revisits along.

``crm customer reassign CUSTOMER --to STAFF`` moves one customer (its external id or numeric
id); ``crm customer reassign --from STAFF --to STAFF`` moves all of someone's customers (e.g. a
leaver's, as the revisit escalation email suggests). Staff are named by external id or id.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Connection, select

from crm_db.models import Customer, Staff
from crm_db.session import make_engine
from crm_db.types import utcnow
from tasks.common.directory import load_directory
from tasks.common.owners import (
    SOURCE_CLI,
    OwnerChangeError,
    apply_owner_changes,
    reassignment,
)
from tasks.common.write_lock import write_transaction

customer_app = typer.Typer(help="Customers.", no_args_is_help=True)


def _resolve(conn: Connection, model: type[Customer] | type[Staff], ref: str, what: str) -> int:
    """An external id, or a numeric id, to the row id (error naming the reference)."""
    found = conn.execute(select(model.id).where(model.external_id == ref)).scalar()
    if found is None and ref.isdigit():
        found = conn.execute(select(model.id).where(model.id == int(ref))).scalar()
    if found is None:
        raise OwnerChangeError(f"{what} {ref!r} does not exist")
    return int(found)


@customer_app.command("reassign")
def reassign(
    customer: Annotated[
        str | None, typer.Argument(help="the customer (external id or id); or use --from")
    ] = None,
    to: Annotated[
        str, typer.Option("--to", help="the new account manager (external id or id)")
    ] = "",
    from_: Annotated[
        str | None,
        typer.Option("--from", help="move every customer of this staff member (external id or id)"),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="why (kept in the audit)")
    ] = "reassigned by a manager",
) -> None:
    """Give CUSTOMER (or every customer of --from) the account manager --to; each change is
    audited (customer_owner_changes) and the customers' open revisits move with them."""
    if not to or (customer is None) == (from_ is None):
        typer.echo("error: name a CUSTOMER or --from STAFF, and --to STAFF", err=True)
        raise typer.Exit(2)
    if len(reason) > 500:
        typer.echo("error: --reason must be at most 500 characters", err=True)
        raise typer.Exit(2)
    engine = make_engine(create=False)
    try:
        with write_transaction(engine) as conn:
            to_id = _resolve(conn, Staff, to, "staff")
            from_id = _resolve(conn, Staff, from_, "staff") if from_ is not None else None
            ids = [_resolve(conn, Customer, customer, "customer")] if customer is not None else []
            changes = reassignment(
                conn, load_directory(conn), to_staff=to_id, customer_ids=ids, from_staff=from_id
            )
            moved = apply_owner_changes(
                conn, changes, now=utcnow(), source=SOURCE_CLI, reason=reason
            )
    except OwnerChangeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"{moved} customer(s) reassigned to staff {to}; their open revisits moved with them")


def register(app: typer.Typer) -> None:
    app.add_typer(customer_app, name="customer")
