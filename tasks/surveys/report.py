"""The monthly survey report (IO): the stored scores and loop figures read per recipient's view,
the month's ratings and suggestions aggregated in SQL, one ``survey_report`` email per
recipient queued in one transaction.

Who gets which view is ``tasks/surveys/rules/report.py``; recipients come from the shared
organisation directory (reachable staff only). A region manager's email is built from their
region's rows alone - its region line, branches, account managers and loop - so no other
region's figure can reach it. Suggestions are the customers' own words (the templates escape
them); nothing internal (revisit notes, complaint descriptions) is read here.
Key ``survey_report:<YYYY-MM>:staff:<id>``: a re-run queues nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from crm_db.enums import StaffRole, SurveyKind
from crm_db.models import (
    Branch,
    Customer,
    Region,
    SurveyInvitation,
    SurveyLoopScore,
    SurveyResponse,
    SurveyScore,
)
from crm_db.types import raw_utc_datetime
from tasks.common.directory import Directory, StaffRecord, load_directory
from tasks.complaints.rules.feedback_report import Month, month_bounds, month_to_report
from tasks.mail.outbox import NewMessage, enqueue, queued_keys
from tasks.surveys.rules.loop import LoopTally, loop_scores
from tasks.surveys.rules.periods import Period
from tasks.surveys.rules.report import (
    KIND,
    MAX_SUGGESTIONS,
    Stored,
    View,
    clip_suggestion,
    comparison,
    rating_figures,
    report_key,
    report_quarters,
    view_of,
)

Key = tuple[str, str, str]  # period, level, scope


@dataclass(frozen=True)
class Recipient:
    member: StaffRecord
    view: View
    region_id: int | None = None  # the region view's region


def recipients(directory: Directory) -> list[Recipient]:
    """Every reachable staff member with a view: a region manager for the region they manage
    (the first by id if several), the marketing admin and executives, the two departments."""
    found: dict[int, Recipient] = {}
    for region_id, manager_id in sorted(directory.region_managers.items()):
        manager = directory.member(manager_id)
        if manager is None or not manager.reachable or manager.role is not StaffRole.REGION_MANAGER:
            continue
        found.setdefault(manager.id, Recipient(manager, View.REGION, region_id))
    for member in sorted(directory.staff.values(), key=lambda s: s.id):
        view = view_of(member.role)
        if view in (View.COMPANY, View.DEPARTMENT) and member.reachable:
            assert view is not None
            found.setdefault(member.id, Recipient(member, view))
    return sorted(found.values(), key=lambda r: r.member.id)


@dataclass
class Figures:
    """What the report reads once per run, shared by every recipient's view."""

    current: Period
    previous: Period
    scores: dict[Key, dict[str, Stored]]
    loop: dict[Key, LoopTally]
    regions: list[tuple[int, str]]  # id, name, in code order
    branches: list[tuple[int, str, int]]  # id, name, region id, in region then name order

    def line(self, level: str, scope: str, name: str) -> dict[str, Any]:
        now = self.scores.get((self.current.code, level, scope), {})
        before = self.scores.get((self.previous.code, level, scope), {})
        return {"name": name, **comparison(now, before)}

    def has(self, level: str, scope: str) -> bool:
        return any((p.code, level, scope) in self.scores for p in (self.current, self.previous))

    def loop_line(self, level: str, scope: str, name: str) -> dict[str, Any]:
        now_t = self.loop.get((self.current.code, level, scope), LoopTally())
        now = loop_scores(now_t)
        before = loop_scores(self.loop.get((self.previous.code, level, scope), LoopTally()))
        return {
            "name": name,
            "alerts": now_t.alerts,
            "followed_up_pct": now.followed_up_pct,
            "followed_up_pct_previous": before.followed_up_pct,
            "told_pct": now.told_pct,
            "told_pct_previous": before.told_pct,
            "next_answers": now_t.next_answers,
            "next_nps": now.next_nps,
            "next_csat": now.next_csat,
            "recovered_pct": now.recovered_pct,
        }


def load_figures(conn: Connection, month: str) -> Figures:
    current, previous = report_quarters(month)
    codes = [current.code, previous.code]
    scores: dict[Key, dict[str, Stored]] = defaultdict(dict)
    for row in conn.execute(
        select(
            SurveyScore.period,
            SurveyScore.level,
            SurveyScore.scope,
            SurveyScore.kind,
            SurveyScore.score,
            SurveyScore.sent,
            SurveyScore.responses,
        ).where(SurveyScore.period.in_(codes))
    ):
        kind = SurveyKind(row.kind).value
        scores[(row.period, row.level, row.scope)][kind] = Stored(
            row.score, row.sent, row.responses
        )
    loop: dict[Key, LoopTally] = {}
    counts = [f.name for f in fields(LoopTally)]
    for row in conn.execute(
        select(
            SurveyLoopScore.period,
            SurveyLoopScore.level,
            SurveyLoopScore.scope,
            *(getattr(SurveyLoopScore, c) for c in counts),
        ).where(SurveyLoopScore.period.in_(codes))
    ):
        loop[(row.period, row.level, row.scope)] = LoopTally(*(getattr(row, c) for c in counts))
    regions = conn.execute(select(Region.id, Region.code, Region.name)).tuples().all()
    region_order = {rid: i for i, (rid, _, _) in enumerate(sorted(regions, key=lambda r: r[1]))}
    branches = conn.execute(select(Branch.id, Branch.name, Branch.region_id)).tuples().all()
    return Figures(
        current,
        previous,
        dict(scores),
        loop,
        [(rid, name or code) for rid, code, name in sorted(regions, key=lambda r: r[1])],
        sorted(
            ((bid, name, rid) for bid, name, rid in branches),
            key=lambda b: (region_order.get(b[2], 0), b[1]),
        ),
    )


def _am_region(directory: Directory, member: StaffRecord) -> int | None:
    return directory.region_of(member.branch_id) or member.region_id


def _account_managers(
    figures: Figures, directory: Directory, region_id: int | None
) -> list[dict[str, Any]]:
    """Account managers with stored rows (``None``: every one; else those of the region)."""
    lines = []
    for member in sorted(directory.staff.values(), key=lambda s: (s.name, s.id)):
        scope = str(member.id)
        if not figures.has("account_manager", scope):
            continue
        if region_id is not None and _am_region(directory, member) != region_id:
            continue
        lines.append(figures.line("account_manager", scope, member.name))
    return lines


def _scores_section(
    figures: Figures, directory: Directory, region_id: int | None
) -> dict[str, Any]:
    """The scores part of a region view (``region_id``) or of the company view (``None``)."""
    regions = [(rid, name) for rid, name in figures.regions if region_id in (None, rid)]
    branches = [b for b in figures.branches if region_id in (None, b[2])]
    company = region_id is None
    return {
        "company": figures.line("company", "", "") if company else None,
        "regions": [figures.line("region", str(rid), name) for rid, name in regions],
        "branches": [
            figures.line("branch", str(bid), name)
            for bid, name, _ in branches
            if figures.has("branch", str(bid))
        ],
        "account_managers": _account_managers(figures, directory, region_id),
        "classes": [
            figures.line("class", klass, klass)
            for klass in ("A", "B", "C", "-")
            if figures.has("class", klass)
        ]
        if company
        else [],
        "loop": ([figures.loop_line("company", "", "")] if company else [])
        + [figures.loop_line("region", str(rid), name) for rid, name in regions],
    }


def _ratings(conn: Connection, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    window = (SurveyResponse.responded_at >= start, SurveyResponse.responded_at < end)
    found = {}
    for name, column in (
        ("product", SurveyResponse.product_rating),
        ("service", SurveyResponse.service_rating),
    ):
        rows = conn.execute(
            select(column, func.count()).where(column.is_not(None), *window).group_by(column)
        )
        found[name] = rating_figures({int(value): int(n) for value, n in rows})
    return found


def department_section(
    conn: Connection, month: Month, zone: ZoneInfo, region_names: dict[int, str]
) -> dict[str, Any]:
    """The month's product and service ratings against the month before, and the month's
    suggestions (the most recent ``MAX_SUGGESTIONS``, with the total)."""
    now = _ratings(conn, month.start, month.end)
    before = _ratings(conn, month.previous_start, month.start)
    ratings = {name: {**now[name], "average_previous": before[name]["average"]} for name in now}
    has_text = (
        SurveyResponse.comment.is_not(None),
        SurveyResponse.comment != "",
        SurveyResponse.responded_at >= month.start,
        SurveyResponse.responded_at < month.end,
    )
    total = int(
        conn.execute(select(func.count()).select_from(SurveyResponse).where(*has_text)).scalar_one()
    )
    rows = conn.execute(
        select(
            SurveyResponse.responded_at,
            SurveyResponse.score,
            SurveyResponse.product_rating,
            SurveyResponse.service_rating,
            SurveyResponse.comment,
            SurveyInvitation.kind,
            Branch.region_id,
        )
        .join(SurveyInvitation, SurveyInvitation.id == SurveyResponse.invitation_id)
        .join(Customer, Customer.id == SurveyInvitation.customer_id)
        .outerjoin(Branch, Branch.id == Customer.branch_id)
        .where(*has_text)
        .order_by(SurveyResponse.responded_at.desc(), SurveyResponse.id.desc())
        .limit(MAX_SUGGESTIONS)
    )
    suggestions = [
        {
            "on": _local_day(row.responded_at, zone).isoformat(),
            "survey": SurveyKind(row.kind).value,
            "score": row.score,
            "product_rating": row.product_rating,
            "service_rating": row.service_rating,
            "region": region_names.get(row.region_id) if row.region_id is not None else None,
            "text": clip_suggestion(row.comment),
        }
        for row in rows
    ]
    return {"ratings": ratings, "suggestions": suggestions, "suggestion_count": total}


def _local_day(moment: datetime, zone: ZoneInfo) -> date:
    aware = raw_utc_datetime(moment)  # SQLite hands back naive UTC
    assert aware is not None
    return aware.astimezone(zone).date()


@dataclass(frozen=True)
class SurveyReportRun:
    month: str
    queued: int
    already_queued: int
    regions: int
    company: int
    departments: int


_EMPTY_SCORES: dict[str, Any] = {
    "company": None,
    "regions": [],
    "branches": [],
    "account_managers": [],
    "classes": [],
    "loop": [],
}
_EMPTY_DEPARTMENT: dict[str, Any] = {"ratings": None, "suggestions": [], "suggestion_count": 0}


def queue_survey_reports(
    session: Session,
    as_of: date,
    *,
    zone: ZoneInfo,
    now: datetime,
    month: str | None = None,
    dry_run: bool = False,
) -> SurveyReportRun | None:
    """Queue ``month``'s report (default: the last complete month before ``as_of``) in
    ``session``'s transaction. The scheduled call (no ``month``) computes nothing when every
    recipient's email of the month is queued already (``None``); an explicit ``month`` is always
    computed, and still queued once per recipient (the keys)."""
    label = month or month_to_report(as_of)
    bounds = month_bounds(label, zone)  # also checks an explicit month's format
    conn = session.connection()
    directory = load_directory(conn)
    people = recipients(directory)
    known = queued_keys(conn, [report_key(label, r.member.id) for r in people])
    if month is None and people and len(known) == len(people):
        return None
    figures = load_figures(conn, label)
    region_names = dict(figures.regions)
    department = (
        department_section(conn, bounds, zone, region_names)
        if any(r.view is View.DEPARTMENT for r in people)
        else _EMPTY_DEPARTMENT
    )
    messages: list[NewMessage] = []
    views = {View.REGION: 0, View.COMPANY: 0, View.DEPARTMENT: 0}
    for r in people:
        views[r.view] += 1
        if r.view is View.DEPARTMENT:
            scope_name, sections = r.member.role.value, {**_EMPTY_SCORES, **department}
        elif r.view is View.COMPANY:
            scope_name = ""
            sections = {**_scores_section(figures, directory, None), **_EMPTY_DEPARTMENT}
        else:
            assert r.region_id is not None
            scope_name = region_names.get(r.region_id, str(r.region_id))
            sections = {**_scores_section(figures, directory, r.region_id), **_EMPTY_DEPARTMENT}
        messages.append(_message(r, label, figures, scope_name, sections))
    fresh = [m for m in messages if m.idempotency_key not in known]
    if not dry_run and fresh:
        enqueue(session, fresh, now=now)
    return SurveyReportRun(
        label,
        len(fresh),
        len(known),
        views[View.REGION],
        views[View.COMPANY],
        views[View.DEPARTMENT],
    )


def _message(
    r: Recipient, month: str, figures: Figures, scope_name: str, sections: dict[str, Any]
) -> NewMessage:
    member = r.member
    assert member.email is not None  # reachable
    return NewMessage(
        idempotency_key=report_key(month, member.id),
        kind=KIND,
        locale=member.locale or "zh-CN",
        recipient_email=member.email,
        recipient_name=member.name,
        customer_id=None,
        staff_id=member.id,
        context={
            "recipient_name": member.name,
            "month": month,
            "view": r.view.value,
            "scope_name": scope_name,
            "period": figures.current.code,
            "previous_period": figures.previous.code,
            **sections,
        },
    )


__all__ = [
    "Figures",
    "Recipient",
    "SurveyReportRun",
    "department_section",
    "load_figures",
    "queue_survey_reports",
    "recipients",
]
