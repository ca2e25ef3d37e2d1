"""The Prefect task of the target reconciliation: a thin wrapper opening the shared engine.
One task per run (three GROUP BYs per period run in the database); it returns counts, ids,
the per-region artifact table and the report files' paths, never the rows (Prefect keeps task
results in memory). The report files are written once the snapshot is committed: a run that
failed to write its snapshot leaves no files claiming a revision it does not have."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Connection, select

from crm_core.settings import get_settings
from crm_db.models import Region
from crm_db.session import shared_engine
from tasks.mail.outbox import NewMessage, queued_keys
from tasks.targets.reconciliation import (
    WrittenSnapshot,
    compute,
    latest_snapshot,
    write_snapshot,
)
from tasks.targets.reports import (
    BuiltReports,
    ReportFile,
    build_reports,
    reports_folder,
    write_report_files,
)
from tasks.targets.rules.plan import RunKind
from tasks.targets.summary import Row, artifact_rows, ledger_counts
from tasks.targets.weekly_forms import compose_form_invitations
from tasks.targets.weekly_rollup import RollupRun, queue_weekly_rollup


@dataclass(frozen=True)
class RunOutcome:
    description: str
    counts: dict[str, int]
    rows: list[Row]
    target_version_id: int | None
    snapshot: WrittenSnapshot | None
    warnings: list[str] = field(default_factory=list)
    report_files: list[dict[str, str]] = field(default_factory=list)  # view, file, path


# No retries: the write is one transaction (a failure rolls it back), but a retry after a lost
# commit acknowledgement would add a revision; the operator re-runs instead, which supersedes.
@task(name="reconcile-targets", cache_policy=NO_CACHE)
def reconcile_targets(
    kind: RunKind,
    as_of: date,
    month: str | None,
    run_id: int | None,
    dry_run: bool,
    resend: bool,
    parameters: Mapping[str, Any],
) -> RunOutcome:
    engine = shared_engine()
    settings = get_settings()
    result = compute(engine, kind, as_of, settings.tz, month)

    built: list[BuiltReports] = []

    def compose(conn: Connection, revision: int) -> list[NewMessage]:
        reports = build_reports(
            conn,
            result,
            revision=revision,
            resend=resend,
            company_name=settings.company_name,
            run_id=run_id,
            with_files=not dry_run,
        )
        built.append(reports)
        # Weekly runs add each region manager's 周反馈表 link (once per week: its own key).
        return reports.messages + compose_form_invitations(
            conn,
            result,
            key=settings.signing_key(),
            base_url=settings.public_base_url,
            zone=settings.tz,
            run_id=run_id,
        )

    snapshot = None
    if not dry_run:
        snapshot = write_snapshot(engine, result, as_of, run_id, parameters, compose)
    with engine.connect() as conn:
        codes = dict(conn.execute(select(Region.id, Region.code)).tuples().all())
        if dry_run:
            latest = latest_snapshot(conn, result.plan, result.policies.periods.rule.value)
            drafts = compose(conn, 1 if latest is None else latest[1] + 1)
            known = queued_keys(conn, [m.idempotency_key for m in drafts])
        conn.rollback()
    plan = result.plan
    counts = ledger_counts(result.rows)
    warnings: list[str] = []
    if result.target_version_id is None:
        warnings.append("no targets were ever imported: every row is flagged no_target")
    else:
        counts["target_version"] = result.target_version_id
    if counts["flag_target_mismatch"]:
        warnings.append(
            f"{counts['flag_target_mismatch']} region targets differ from the sum of their "
            "branches' targets (flag target_mismatch)"
        )
    if snapshot is not None:
        counts.update(
            snapshot_id=snapshot.id,
            revision=snapshot.revision,
            rows_written=snapshot.rows,
            reports_queued=snapshot.reports_queued,
            reports_already_queued=snapshot.reports_already_queued,
        )
        if snapshot.supersedes_id is not None:
            counts["superseded_snapshot_id"] = snapshot.supersedes_id
    files: list[dict[str, str]] = []
    where = ""
    if snapshot is not None and built:
        folder = reports_folder(result, snapshot.revision)
        files = _write_files(built[-1].files, folder)
        counts["report_files"] = len(files)
        where = f"; report files in {folder}"
    if dry_run:
        counts["reports_would_queue"] = len(drafts) - len(known)
    description = (
        f"Targets {plan.kind.value} {plan.label} ({result.policies.periods.rule.value} month "
        f"{plan.month.label}, {plan.current.start.isoformat()} to {plan.through.isoformat()}), "
        f"target version {result.target_version_id or 'none'}"
    )
    if plan.quarter is not None:
        description += f"; closes {plan.quarter.label} (award list)"
    return RunOutcome(
        description + where,
        counts,
        artifact_rows(result, codes),
        result.target_version_id,
        snapshot,
        warnings,
        files,
    )


def _write_files(files: list[ReportFile], folder: Path) -> list[dict[str, str]]:
    paths = write_report_files(files, folder)
    return [
        {"view": item.view, "file": path.name, "path": str(path)}
        for item, path in zip(files, paths, strict=True)
    ]


# Safe to retry: the roll-up reads a closed week and queues by outbox key, once.
@task(name="queue-weekly-rollup", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def queue_weekly_rollup_task(as_of: date, run_id: int | None, dry_run: bool) -> RollupRun:
    return queue_weekly_rollup(
        shared_engine(), as_of, zone=get_settings().tz, run_id=run_id, dry_run=dry_run
    )
