"""Survey scores, stored (IO): per quarter - the current one and the one before - NPS, CSAT and
the response rate of the company, each region, branch, account manager and class, in
``survey_scores`` (one row per period x level x scope x kind).

One aggregate statement per period counts the invitations sent in it (``sent_at``, local
quarter of the CRM time zone) and their answers by the customer's branch, account manager and
class and the survey kind (a few hundred groups at most); the levels are sums of those groups,
and the pure rules (``tasks/surveys/rules/scores.py``) turn the counts into scores. The rows of
the two periods are replaced in one transaction: a re-run writes the same rows again.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, delete, insert, select, text

from crm_db.enums import SurveyKind, SurveyPeriod
from crm_db.models import Branch, Region, SurveyLoopScore, SurveyScore
from crm_db.session import session_scope
from crm_db.types import UTCDateTime
from tasks.common.write_lock import begin_write
from tasks.surveys.rules.periods import Period, period_of
from tasks.surveys.rules.scores import Tally, scores, show

LEVELS = ("company", "region", "branch", "account_manager", "class")

_COUNTS = text(
    "SELECT c.branch_id, c.account_manager_id, c.abc_class, i.kind, "
    "COUNT(*) AS sent, COUNT(r.id) AS responses, "
    "SUM(CASE WHEN r.score >= 9 THEN 1 ELSE 0 END) AS promoters, "
    "SUM(CASE WHEN r.score BETWEEN 7 AND 8 THEN 1 ELSE 0 END) AS passives, "
    "SUM(CASE WHEN r.score <= 6 THEN 1 ELSE 0 END) AS detractors, "
    "SUM(CASE WHEN r.score >= 4 THEN 1 ELSE 0 END) AS satisfied "
    "FROM survey_invitations i JOIN customers c ON c.id = i.customer_id "
    "LEFT JOIN survey_responses r ON r.invitation_id = i.id "
    "WHERE i.sent_at >= :lo AND i.sent_at < :hi "
    "GROUP BY c.branch_id, c.account_manager_id, c.abc_class, i.kind"
).bindparams(bindparam("lo", type_=UTCDateTime()), bindparam("hi", type_=UTCDateTime()))


def previous_quarter(day: date) -> Period:
    return period_of(
        period_of(day, SurveyPeriod.QUARTER).start - timedelta(days=1), SurveyPeriod.QUARTER
    )


def _bounds(period: Period, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    lo = datetime.combine(period.start, time(), timezone).astimezone(UTC)
    hi = datetime.combine(period.end + timedelta(days=1), time(), timezone).astimezone(UTC)
    return lo, hi


Group = tuple[str, str, SurveyKind]  # level, scope, kind


def period_tallies(engine: Engine, period: Period, timezone: ZoneInfo) -> dict[Group, Tally]:
    """The counts of every group of ``period`` (a group with no invitation is absent)."""
    lo, hi = _bounds(period, timezone)
    sums: dict[Group, list[int]] = defaultdict(lambda: [0] * 6)
    with engine.connect() as conn:
        region_of = dict(conn.execute(select(Branch.id, Branch.region_id)).tuples().all())
        for row in conn.execute(_COUNTS, {"lo": lo, "hi": hi}):
            kind = SurveyKind(row.kind)
            figures = [
                int(row.sent),
                int(row.responses),
                int(row.promoters or 0),
                int(row.passives or 0),
                int(row.detractors or 0),
                int(row.satisfied or 0),
            ]
            region = region_of.get(row.branch_id)
            klass = getattr(row.abc_class, "value", row.abc_class) or "-"
            scopes = [
                ("company", ""),
                ("region", "-" if region is None else str(region)),
                ("branch", "-" if row.branch_id is None else str(row.branch_id)),
                (
                    "account_manager",
                    "-" if row.account_manager_id is None else str(row.account_manager_id),
                ),
                ("class", str(klass)),
            ]
            for level, scope in scopes:
                total = sums[(level, scope, kind)]
                for n, value in enumerate(figures):
                    total[n] += value
    return {group: _tally(group[2], f) for group, f in sums.items()}


def _tally(kind: SurveyKind, f: list[int]) -> Tally:
    sent, responses, promoters, passives, detractors, satisfied = f
    if kind is SurveyKind.NPS:
        return Tally(promoters, passives, detractors, 0, 0, sent, responses)
    return Tally(0, 0, 0, satisfied, responses, sent, responses)


@dataclass(frozen=True, slots=True)
class ScoreLine:
    """One line of the artifact: a group's NPS and CSAT this period against the one before."""

    label: str
    nps: str
    nps_before: str
    csat: str
    csat_before: str
    response_rate: str

    def markdown(self) -> str:
        return (
            f"| {self.label} | {self.nps} | {self.nps_before} | {self.csat} | "
            f"{self.csat_before} | {self.response_rate} |"
        )


def scores_markdown(lines: list[ScoreLine]) -> str:
    """The artifact's score table (in its description; the table holds the invitations)."""
    head = (
        "| scores | NPS | NPS previous | CSAT % | CSAT % previous | response rate % |\n"
        "|---|---|---|---|---|---|"
    )
    return "\n".join([head, *(line.markdown() for line in lines)])


def store_scores(
    engine: Engine,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    run_id: int | None,
    dry_run: bool,
) -> list[ScoreLine]:
    """Compute and (outside a dry run) replace the two quarters' rows; returns the company and
    per-region lines for the artifact."""
    current = period_of(as_of, SurveyPeriod.QUARTER)
    before = previous_quarter(as_of)
    found = {p.code: period_tallies(engine, p, timezone) for p in (current, before)}
    if not dry_run:
        rows = [
            _row(code, group, tally, run_id, now)
            for code, groups in found.items()
            for group, tally in sorted(groups.items())
        ]
        replace_periods(engine, SurveyScore, [current.code, before.code], rows)
    return [
        _line(level, scope, label, found, current, before)
        for level, scope, label in artifact_groups(engine)
    ]


def replace_periods(
    engine: Engine,
    model: type[SurveyScore] | type[SurveyLoopScore],
    periods: list[str],
    rows: list[dict[str, object]],
) -> None:
    """Replace every row of ``periods`` in a per-period table (``survey_scores``,
    ``survey_loop_scores``) with ``rows``, in one transaction: a re-run writes the same rows."""
    with session_scope(engine) as session:
        begin_write(session.connection())
        session.execute(delete(model).where(model.period.in_(periods)))
        if rows:
            session.execute(insert(model), rows)


def artifact_groups(engine: Engine) -> list[tuple[str, str, str]]:
    """(level, scope, label) of the artifact's lines: the company, then each region in code
    order (how the company numbers its regions), by name (片区), as the other flows'
    artifacts show them."""
    with engine.connect() as conn:
        regions = conn.execute(select(Region.id, Region.code, Region.name)).tuples().all()
    return [("company", "", "company")] + [
        ("region", str(region_id), f"region {name or code}")
        for region_id, code, name in sorted(regions, key=lambda r: r[1])
    ]


def _row(
    period: str, group: Group, tally: Tally, run_id: int | None, now: datetime
) -> dict[str, object]:
    level, scope, kind = group
    found = scores(tally)
    return {
        "period": period,
        "level": level,
        "scope": scope,
        "kind": kind,
        "sent": tally.sent,
        "responses": tally.responses,
        "promoters": tally.promoters,
        "passives": tally.passives,
        "detractors": tally.detractors,
        "satisfied": tally.csat_satisfied,
        "score": found.nps if kind is SurveyKind.NPS else found.csat,
        "response_rate": found.response_rate,
        "run_id": run_id,
        "computed_at": now,
    }


def _line(
    level: str,
    scope: str,
    label: str,
    found: dict[str, dict[Group, Tally]],
    current: Period,
    before: Period,
) -> ScoreLine:
    def get(period: Period, kind: SurveyKind) -> Tally:
        return found[period.code].get((level, scope, kind), Tally())

    now_nps, now_csat = get(current, SurveyKind.NPS), get(current, SurveyKind.CSAT)
    total = Tally(
        sent=now_nps.sent + now_csat.sent, responses=now_nps.responses + now_csat.responses
    )
    return ScoreLine(
        label=f"{label} {current.code} vs {before.code}",
        nps=show(scores(now_nps).nps),
        nps_before=show(scores(get(before, SurveyKind.NPS)).nps),
        csat=show(scores(now_csat).csat),
        csat_before=show(scores(get(before, SurveyKind.CSAT)).csat),
        response_rate=show(scores(total).response_rate),
    )


__all__ = [
    "LEVELS",
    "ScoreLine",
    "artifact_groups",
    "replace_periods",
    "scores_markdown",
    "period_tallies",
    "previous_quarter",
    "store_scores",
]
