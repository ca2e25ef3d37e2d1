"""``crm outbox status [--json]`` and ``crm outbox retry --failed [--kind K]``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from crm_db.session import make_engine
from crm_db.types import utcnow
from tasks.mail.kinds import KINDS
from tasks.mail.outbox_admin import outbox_status, retry_failed

outbox_app = typer.Typer(
    help="The email outbox: what is queued, sent, failed.", no_args_is_help=True
)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@outbox_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Counts per status and kind, the oldest pending message's age, the latest errors."""
    engine = make_engine(create=False)
    try:
        report = outbox_status(engine, now=utcnow())
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
        return
    typer.echo(f"outbox: {report.total} messages")
    for name, count in sorted(report.by_status.items()):
        typer.echo(f"  {name:<11} {count}")
    typer.echo(f"oldest pending: {_age(report.oldest_pending_s)}")
    if report.by_kind:
        typer.echo("by kind:")
        width = max(len(kind) for kind in report.by_kind)
        for kind, counts in sorted(report.by_kind.items()):
            detail = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            typer.echo(f"  {kind:<{width}}  {detail}")
    if report.last_errors:
        typer.echo("latest errors:")
        for error in report.last_errors:
            typer.echo(
                f"  #{error['id']} {error['kind']} ({error['status']}, "
                f"{error['attempts']} attempts): {error['error']}"
            )


@outbox_app.command("retry")
def retry(
    failed: Annotated[
        bool, typer.Option("--failed", help="re-queue failed messages (required)")
    ] = False,
    kind: Annotated[str | None, typer.Option(help="only messages of this kind")] = None,
    clear_flags: Annotated[
        bool,
        typer.Option(
            "--clear-flags",
            help="also clear the undeliverable flags these messages set when the relay "
            "refused the client (recorded in address_flag_clearances)",
        ),
    ] = False,
) -> None:
    """Re-queue failed messages: due now, with a fresh set of attempts."""
    if not failed:
        typer.echo("error: say what to retry: --failed", err=True)
        raise typer.Exit(2)
    if kind is not None and kind not in KINDS:
        typer.echo(f"error: unknown kind {kind!r}; known: {', '.join(sorted(KINDS))}", err=True)
        raise typer.Exit(2)
    engine = make_engine(create=False)
    try:
        result = retry_failed(engine, now=utcnow(), kind=kind, clear_flags=clear_flags)
    finally:
        engine.dispose()
    scope = f" of kind {kind}" if kind else ""
    typer.echo(
        f"re-queued {result.requeued} failed messages{scope}; the next delivery run sends them"
    )
    if clear_flags:
        typer.echo(
            f"cleared {result.flags_cleared} undeliverable flags set by relay refusals "
            "(see address_flag_clearances)"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox")
