"""One way every flow starts and ends: the ledger row, the summary artifact, the warnings, the
closing log line and the ``FlowSummary`` it returns.

A flow wraps its work in ``flow_run(...)``; inside, it may ``warn`` as it goes and ends with
``finish(counts, rows, description)``. On the way out:

- the artifact (``<flow>-summary``) gets the flow's table, with any warnings in its
  description, so the Prefect UI shows them beside the figures;
- the ledger row (none for a dry run) is completed with the counts, or marked failed with the
  masked error if the block raises;
- each warning is logged once through the run logger, and one info line sums the counts;
- warnings every flow shares are added here, once: today, a business calendar about to run out
  of known public holidays (``tasks.common.calendars.coverage_warnings``).

Plain calls, not tasks: a few statements and one API request, cheaper than the ~40 ms of CPU a
task run costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

from prefect import get_run_logger
from sqlalchemy.exc import SQLAlchemyError

from flows.run_contract import FlowSummary
from tasks.common.artifacts import Cell, artifact_key, publish_summary
from tasks.common.calendars import coverage_warnings
from tasks.common.run_ledger import LedgerRun, ledger_run

# Warnings that do not depend on the flow (the calendar's coverage), given the run date.
SharedWarnings = Callable[[date], list[str]]


@dataclass
class FlowRunHandle:
    """What a flow holds while it runs: its ledger row id and the warnings gathered so far."""

    flow_name: str
    as_of: date
    dry_run: bool
    ledger: LedgerRun
    shared_warnings: SharedWarnings
    warnings: list[str] = field(default_factory=list)
    summary: FlowSummary | None = None

    @property
    def run_id(self) -> int | None:
        """The ledger row's id (None in a dry run): what the flow's writes are tagged with."""
        return self.ledger.id

    def warn(self, text: str) -> None:
        """A finding the operator should act on (no personal data: ids and counts only)."""
        if text not in self.warnings:
            self.warnings.append(text)

    def finish(
        self,
        counts: Mapping[str, int],
        rows: Sequence[Mapping[str, Cell]],
        description: str,
    ) -> FlowSummary:
        """Publish the artifact, complete the ledger row and return the flow's summary."""
        try:
            shared = self.shared_warnings(self.as_of)
        except SQLAlchemyError as exc:
            # Best effort: the flow's work is committed; a failed check must not fail the run.
            shared = [f"could not check the business calendars' coverage: {type(exc).__name__}"]
        for text in shared:
            self.warn(text)
        key = artifact_key(self.flow_name)
        label = f"{description}{' (dry run)' if self.dry_run else ''}"
        if self.warnings:
            label += "\n\nWarnings:\n" + "\n".join(f"- {text}" for text in self.warnings)
        publish_summary(key, rows, description=label)
        totals = dict(counts)
        self.ledger.complete(totals)
        self.summary = FlowSummary(
            flow=self.flow_name,
            as_of=self.as_of.isoformat(),
            dry_run=self.dry_run,
            status="warning" if self.warnings else "ok",
            counts=totals,
            warnings=list(self.warnings),
            ledger_run_id=self.ledger.id,
            artifact_key=key,
        )
        return self.summary


@contextmanager
def flow_run(
    flow_name: str,
    as_of: date,
    parameters: Mapping[str, object],
    *,
    dry_run: bool,
    shared_warnings: SharedWarnings = coverage_warnings,
) -> Iterator[FlowRunHandle]:
    """The bracket around a flow's work (see the module docstring). The block must end with
    ``finish``; leaving it without doing so is a bug in the flow and raises."""
    with ledger_run(flow_name, as_of, parameters, dry_run=dry_run) as ledger:
        handle = FlowRunHandle(flow_name, as_of, dry_run, ledger, shared_warnings)
        yield handle
        if handle.summary is None:
            raise RuntimeError(f"flow {flow_name!r} ended without calling finish()")
    logger = get_run_logger()
    for text in handle.warnings:
        logger.warning(text)
    summary = handle.summary
    logger.info(
        "%s %s%s: %s",
        flow_name,
        as_of.isoformat(),
        " (dry run)" if dry_run else "",
        ", ".join(f"{k}={v}" for k, v in summary["counts"].items()) or "nothing to do",
    )
