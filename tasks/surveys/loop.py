"""The detractor loop of the surveys flow (IO): the answers recorded since the last run was
processed become care alerts through ``tasks.care_alerts`` - a detractor (NPS 0-6), a CSAT of
1-2 or a product/service rating of 1-2 raises an alert to the account manager (A class: the
region manager too) and an urgent revisit within 2 working days (``raise_alerts``).

- **Which answers.** Those recorded (``survey_responses.recorded_at``) at or after the start of
  the last completed, non-dry surveys run (all of them on the first run), read by id in chunks.
  The overlap with the last run is harmless: an alert's key ``survey:response:<id>`` is unique,
  so an answer already alerted is skipped (counted ``duplicate``).
- **Old answers.** An answer given (``responded_at``) before the first surveys run started -
  the flow's loop did not exist then - is reported (counted ``old_answers``), not acted on.
  The first run's start is the ledger's (``flow_runs``) earliest non-dry surveys run.
- **Emails.** Each chunk's alerts and revisits commit together (``notify=False``); one last
  transaction queues one ``care_alert`` email per recipient for every alert not yet notified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from crm_db.enums import RunStatus, SurveyKind
from crm_db.models import Customer, FlowRun, SurveyInvitation, SurveyResponse
from crm_db.session import session_scope
from tasks.care_alerts.alerts import AlertCounts, load_policy, raise_batch
from tasks.care_alerts.churn import notify_pending
from tasks.care_alerts.rules import Trigger, survey_trigger
from tasks.common.directory import load_directory

FLOW_NAME = "surveys"
CHUNK = 1_000  # answers per read and per alert transaction


@dataclass(frozen=True, slots=True)
class LoopWindow:
    """``first_start``: the first surveys run's start (older answers are reported only);
    ``since``: answers recorded from then on are (re)considered (``None``: all)."""

    first_start: datetime
    since: datetime | None


def loop_window(conn: Connection, run_id: int | None, now: datetime) -> LoopWindow:
    """From the run ledger: the earliest non-dry surveys run's start (this run's when it is the
    first; ``now`` when there is none, a dry first run) and the last completed one's before
    ``run_id``."""
    runs = FlowRun.__table__
    real = (runs.c.flow_name == FLOW_NAME) & runs.c.dry_run.is_(False)
    first = conn.execute(select(func.min(runs.c.started_at)).where(real)).scalar_one_or_none()
    previous = select(func.max(runs.c.started_at)).where(
        real, runs.c.status == RunStatus.COMPLETED.value
    )
    if run_id is not None:
        previous = previous.where(runs.c.id != run_id)
    since = conn.execute(previous).scalar_one_or_none()
    return LoopWindow(first_start=first or now, since=since)


def _triggers(
    conn: Connection, window: LoopWindow, after_id: int
) -> tuple[list[Trigger], int, int, int]:
    """One chunk of answers after ``after_id``: (triggers, answers read, old answers, last id)."""
    responses = SurveyResponse.__table__
    invitations = SurveyInvitation.__table__
    customers = Customer.__table__
    query = (
        select(
            responses.c.id,
            responses.c.score,
            responses.c.product_rating,
            responses.c.service_rating,
            responses.c.comment,
            responses.c.responded_at,
            invitations.c.kind,
            invitations.c.customer_id,
            customers.c.abc_class,
        )
        .join(invitations, invitations.c.id == responses.c.invitation_id)
        .join(customers, customers.c.id == invitations.c.customer_id)
        .where(responses.c.id > after_id)
        .order_by(responses.c.id)
        .limit(CHUNK)
    )
    if window.since is not None:
        query = query.where(responses.c.recorded_at >= window.since)
    rows = conn.execute(query).all()
    triggers: list[Trigger] = []
    old = 0
    for row in rows:
        responded = row.responded_at
        if responded.tzinfo is None:  # SQLite hands back naive UTC through Core
            responded = responded.replace(tzinfo=window.first_start.tzinfo)
        if responded < window.first_start:
            old += 1
            continue
        nps = SurveyKind(row.kind) is SurveyKind.NPS
        trigger = survey_trigger(
            response_id=row.id,
            customer_id=row.customer_id,
            abc_class=row.abc_class,
            nps=row.score if nps else None,
            csat=None if nps else row.score,
            product_rating=row.product_rating,
            service_rating=row.service_rating,
            comment=row.comment,
        )
        if trigger is not None:
            triggers.append(trigger)
    last = rows[-1].id if rows else after_id
    return triggers, len(rows), old, last


@dataclass
class LoopCounts:
    alerts: AlertCounts
    answers: int = 0
    old_answers: int = 0

    def totals(self) -> dict[str, int]:
        flat = {f"loop_{k}": n for k, n in self.alerts.totals().items()}
        flat["loop_answers"] = self.answers
        flat["loop_old_answers"] = self.old_answers
        return flat

    def description(self) -> str:
        kinds = ", ".join(f"{k}={n}" for k, n in sorted(self.alerts.alerts.items())) or "none"
        return (
            f"Detractor loop: {self.answers} answers considered; alerts raised by kind: {kinds}; "
            f"urgent revisits created {self.alerts.revisits_created}, made urgent "
            f"{self.alerts.revisits_updated}; alert emails {self.alerts.emails}; "
            f"answers older than the first run reported, not acted on: {self.old_answers}"
        )


def raise_survey_alerts(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    run_id: int | None,
    dry_run: bool,
) -> LoopCounts:
    """The answers since the last run -> care alerts, urgent revisits, one email per
    recipient (see the module)."""
    directory = load_directory(engine)
    with engine.connect() as conn:
        window = loop_window(conn, None if dry_run else run_id, now)
    with session_scope(engine) as session:
        policy = load_policy(session)
    counts = LoopCounts(AlertCounts())
    after = 0
    while True:
        with engine.connect() as conn:
            triggers, read, old, after = _triggers(conn, window, after)
        counts.answers += read
        counts.old_answers += old
        if triggers:
            counts.alerts.merge(
                raise_batch(
                    engine,
                    triggers,
                    as_of=as_of,
                    now=now,
                    timezone=timezone,
                    directory=directory,
                    policy=policy,
                    run_id=run_id,
                    dry_run=dry_run,
                )
            )
        if read < CHUNK:
            break
    if not dry_run:
        counts.alerts.emails = notify_pending(
            engine,
            as_of=as_of,
            now=now,
            timezone=timezone,
            directory=directory,
            policy=policy,
            run_id=run_id,
        )
    counts.alerts.alert_ids.clear()
    return counts


__all__ = ["LoopCounts", "LoopWindow", "loop_window", "raise_survey_alerts"]
