"""The detractor loop measured and stored (IO): per quarter - the current one and the one before,
as the scores - the survey alerts raised in it (``care_alerts.as_of``) of the company and each
region: followed up within 2 working days, told the result, their next score
(``tasks/surveys/rules/loop.py`` decides per alert), in ``survey_loop_scores``.

One streamed statement per period reads each alert with its revisit's completion and the
customer's first answer recorded after the alert (a correlated subquery on the customer's
invitations, by the ``(customer_id, created_at)`` index); the two periods' rows are replaced in
one transaction, so a re-run writes the same rows. The previous quarter is recomputed too: an
alert of its last days is followed up, told and answered again after it ends.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Integer, Select, case, cast, func, select
from sqlalchemy.orm import aliased

from crm_db.enums import SurveyKind, SurveyPeriod
from crm_db.models import (
    Branch,
    CareAlert,
    Customer,
    Revisit,
    SurveyInvitation,
    SurveyLoopScore,
    SurveyResponse,
)
from crm_db.types import raw_utc_datetime
from tasks.care_alerts.rules import SURVEY_KINDS
from tasks.surveys.rules.loop import LoopCase, LoopTally, NextAnswer, case_tally, loop_scores
from tasks.surveys.rules.periods import Period, period_of
from tasks.surveys.rules.scores import show
from tasks.surveys.scores import artifact_groups, previous_quarter, replace_periods

LEVELS = ("company", "region")
SOURCE_PREFIX = "response:"  # a survey alert's source names the answer that raised it
Group = tuple[str, str]  # level, scope


def _cases_query(period: Period) -> Select[Any]:
    # The answer that raised the alert (its source is ``response:<id>``), and the customer's
    # first answer after it: their next score.
    origin = aliased(SurveyResponse)
    # (CASE: a churn alert's source is a date; never cast it, whatever order the planner picks.)
    origin_id = case(
        (
            CareAlert.source.startswith(SOURCE_PREFIX),
            cast(func.substr(CareAlert.source, len(SOURCE_PREFIX) + 1), Integer),
        ),
        else_=None,
    )
    later = aliased(SurveyResponse)
    later_invitation = aliased(SurveyInvitation)
    next_id = (
        select(later.id)
        .join(later_invitation, later_invitation.id == later.invitation_id)
        .where(
            later_invitation.customer_id == CareAlert.customer_id,
            later.responded_at > func.coalesce(origin.responded_at, CareAlert.created_at),
            later.id != func.coalesce(origin.id, 0),
        )
        .order_by(later.responded_at, later.id)
        .limit(1)
        .correlate(CareAlert, origin)
        .scalar_subquery()
    )
    answer = aliased(SurveyResponse)
    answered = aliased(SurveyInvitation)
    return (
        select(
            CareAlert.follow_up_due,
            CareAlert.result_queued_at,
            Revisit.completed_at,
            Branch.region_id,
            answered.kind,
            answer.score,
            answer.product_rating,
            answer.service_rating,
        )
        .join(Customer, Customer.id == CareAlert.customer_id)
        .outerjoin(origin, origin.id == origin_id)
        .outerjoin(Branch, Branch.id == Customer.branch_id)
        .outerjoin(Revisit, Revisit.id == CareAlert.revisit_id)
        .outerjoin(answer, answer.id == next_id)
        .outerjoin(answered, answered.id == answer.invitation_id)
        .where(
            CareAlert.kind.in_(sorted(SURVEY_KINDS)),
            CareAlert.source.startswith(SOURCE_PREFIX),
            CareAlert.as_of >= period.start,
            CareAlert.as_of <= period.end,
        )
        .execution_options(yield_per=5_000)
    )


def period_loop(engine: Engine, period: Period, timezone: ZoneInfo) -> dict[Group, LoopTally]:
    """The loop's tallies of every group with an alert in ``period`` (others are absent)."""
    sums: dict[Group, LoopTally] = defaultdict(LoopTally)
    with engine.connect() as conn:
        for row in conn.execute(_cases_query(period)):
            completed = raw_utc_datetime(row.completed_at)
            following = (
                None
                if row.score is None
                else NextAnswer(
                    SurveyKind(row.kind), row.score, row.product_rating, row.service_rating
                )
            )
            case = LoopCase(
                follow_up_due=row.follow_up_due,
                completed_on=None if completed is None else completed.astimezone(timezone).date(),
                told=row.result_queued_at is not None,
                next_answer=following,
            )
            one = case_tally(case)
            region = "-" if row.region_id is None else str(row.region_id)
            for group in (("company", ""), ("region", region)):
                sums[group] = sums[group] + one
    return dict(sums)


@dataclass(frozen=True, slots=True)
class LoopLine:
    """One artifact line: a group's loop this quarter against the one before."""

    label: str
    alerts: int
    followed_up: str
    followed_up_before: str
    told: str
    told_before: str
    next_nps: str
    recovered: str

    def markdown(self) -> str:
        return (
            f"| {self.label} | {self.alerts} | {self.followed_up} | {self.followed_up_before} | "
            f"{self.told} | {self.told_before} | {self.next_nps} | {self.recovered} |"
        )


def loop_markdown(lines: list[LoopLine]) -> str:
    head = (
        "| detractor loop | alerts | followed up in 2 working days % | previous | told the "
        "result % | previous | next NPS | next answer no longer low % |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    return "\n".join([head, *(line.markdown() for line in lines)])


def _row(
    period: str, group: Group, t: LoopTally, run_id: int | None, now: datetime
) -> dict[str, object]:
    found = loop_scores(t)
    return {
        "period": period,
        "level": group[0],
        "scope": group[1],
        **asdict(t),  # the counts, one column each
        "followed_up_pct": found.followed_up_pct,
        "told_pct": found.told_pct,
        "next_nps": found.next_nps,
        "next_csat": found.next_csat,
        "run_id": run_id,
        "computed_at": now,
    }


def store_loop_scores(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    run_id: int | None,
    dry_run: bool,
) -> list[LoopLine]:
    """Compute and (outside a dry run) replace the two quarters' loop rows; returns the company
    and per-region lines for the artifact."""
    current = period_of(as_of, SurveyPeriod.QUARTER)
    before = previous_quarter(as_of)
    found = {p.code: period_loop(engine, p, timezone) for p in (current, before)}
    if not dry_run:
        rows = [
            _row(code, group, t, run_id, now)
            for code, groups in found.items()
            for group, t in sorted(groups.items())
        ]
        replace_periods(engine, SurveyLoopScore, [current.code, before.code], rows)
    lines = []
    for level, scope, label in artifact_groups(engine):
        now_t = found[current.code].get((level, scope), LoopTally())
        now_s = loop_scores(now_t)
        was = loop_scores(found[before.code].get((level, scope), LoopTally()))
        lines.append(
            LoopLine(
                label=f"{label} {current.code} vs {before.code}",
                alerts=now_t.alerts,
                followed_up=show(now_s.followed_up_pct),
                followed_up_before=show(was.followed_up_pct),
                told=show(now_s.told_pct),
                told_before=show(was.told_pct),
                next_nps=show(now_s.next_nps),
                recovered=show(now_s.recovered_pct),
            )
        )
    return lines


__all__ = ["LEVELS", "LoopLine", "loop_markdown", "period_loop", "store_loop_scores"]
