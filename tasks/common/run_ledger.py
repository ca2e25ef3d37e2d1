"""The run ledger: one ``flow_runs`` row per (non-dry) flow run, written by two IO functions.

A flow calls ``start_run`` before it writes anything and ``finish_run`` at the end (also when it
fails), so the CRM database itself tells what ran, for which ``as_of``, with which parameters and
with what outcome, even to someone without access to the Prefect UI. ``prefect_flow_run_id``
links the row to the Prefect run.

They are plain calls, not Prefect tasks: each is one short statement that the flow's own state
already brackets (a failed ledger write fails the run), and a task run costs ~40 ms of CPU in
the flow and the Prefect API - more than the write. They use the process's shared engine (the
database from the settings), so they open no connection of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from prefect.runtime import flow_run as runtime_flow_run

from crm_core.masking import mask_text
from crm_db.enums import RunStatus
from crm_db.models import FlowRun
from crm_db.session import session_scope, shared_engine
from crm_db.types import utcnow

Scalar = str | int | float | bool | None
LedgerValue = Scalar | list[Scalar]
Counts = Mapping[str, Scalar]

# Error texts end up in a table that operators read; a full traceback belongs in the Prefect logs.
MAX_ERROR_CHARS = 2000


def _ledger_scalar(value: object) -> Scalar:
    if value is None or isinstance(value, bool | int | float):
        return value
    # Dates go in as ISO strings untouched: the phone mask would garble "2026-01-15".
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return _ledger_scalar(value.value)
    if isinstance(value, str):
        # Flow parameters are ids, dates, codes and flags; should a free-text value ever carry an
        # address or a phone number, only its masked form is stored.
        return mask_text(value)
    raise TypeError(f"ledger parameters must be flat scalars, got {type(value).__name__}")


def ledger_parameters(parameters: Mapping[str, object]) -> dict[str, LedgerValue]:
    """Flow parameters as JSON-safe flat values, with any personal data masked.

    Lists of scalars are kept (e.g. a list of region codes); nested mappings are refused, since
    flow parameters are flat by design (the Prefect UI renders them as one form).
    """
    result: dict[str, LedgerValue] = {}
    for key, value in parameters.items():
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            result[key] = [_ledger_scalar(item) for item in items]
        else:
            result[key] = _ledger_scalar(value)
    return result


def error_text(exc: BaseException) -> str:
    """A short, masked description of a failure for the ledger's ``error`` column."""
    text = f"{type(exc).__name__}: {exc}"
    return mask_text(text)[:MAX_ERROR_CHARS]


def _current_prefect_flow_run_id() -> str | None:
    # Inside a flow run (or one of its tasks) its id; outside Prefect None.
    return runtime_flow_run.get_id()


def start_run(flow_name: str, as_of: date, dry_run: bool, parameters: Mapping[str, object]) -> int:
    """Insert a ``running`` row for this flow run and return its id."""
    with session_scope(shared_engine()) as session:
        row = FlowRun(
            flow_name=flow_name,
            prefect_flow_run_id=_current_prefect_flow_run_id(),
            as_of=as_of,
            dry_run=dry_run,
            parameters=ledger_parameters(parameters),
            status=RunStatus.RUNNING,
            counts={},
            started_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


def finish_run(
    run_id: int, status: RunStatus | str, counts: Counts, error: str | None = None
) -> None:
    """Close the row opened by ``start_run`` with its final status, counts and (masked) error."""
    final = RunStatus(status)
    if final is RunStatus.RUNNING:
        raise ValueError("finish_run needs a final status (completed or failed), not running")
    with session_scope(shared_engine()) as session:
        row = session.get(FlowRun, run_id)
        if row is None:
            raise LookupError(f"flow_runs row {run_id} does not exist")
        row.status = final
        row.counts = {key: _ledger_scalar(value) for key, value in counts.items()}
        row.error = mask_text(error)[:MAX_ERROR_CHARS] if error else None
        row.finished_at = utcnow()


@dataclass
class LedgerRun:
    """The ledger row of one flow run; ``id`` is None for a dry run, which records nothing."""

    id: int | None

    def complete(self, counts: Counts) -> None:
        if self.id is not None:
            finish_run(self.id, RunStatus.COMPLETED, counts)


@contextmanager
def ledger_run(
    flow_name: str, as_of: date, parameters: Mapping[str, object], *, dry_run: bool
) -> Iterator[LedgerRun]:
    """Every flow's ledger bracket: opens a ``running`` row (none for a dry run); an exception
    inside closes it as ``failed`` with the masked error and propagates. The flow calls
    ``complete`` with its counts once its work is done."""
    run = LedgerRun(None if dry_run else start_run(flow_name, as_of, dry_run, parameters))
    try:
        yield run
    except Exception as exc:
        if run.id is not None:
            finish_run(run.id, RunStatus.FAILED, {}, error_text(exc))
        raise
