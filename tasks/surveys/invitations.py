"""IO for the surveys flow, step 1: the day's invitations, one customer id range at a time.

The run's inputs are read once (``load_context``): the rules, the calendar, the waves and their
campaigns (created on a wave's first day, or the flow's first run in its period - never in a
dry run) and the resolved complaints whose post-complaint survey is due. Each range is then one
SQL statement selecting the customers whose wave day has come and who have no invitation in the
wave yet (``spread_hash < bound`` per class), with the shared contact policy's facts beside them
(``tasks.common.contact_policy.FACT_COLUMNS``); the pure rules decide, and the invitations and
their emails are written in one transaction. ``ON CONFLICT DO NOTHING`` on the unique keys (one
invitation per wave and customer, one per complaint, one outbox row per key) makes re-runs and
concurrent runs write nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, bindparam, text

from crm_db.bulk import driver_date, driver_timestamp, id_list, insert_rows, insert_rows_returning
from crm_db.enums import AbcClass, InvitationStatus, SurveyKind, SurveyTrigger
from crm_db.types import UTCDateTime, raw_utc_datetime
from tasks.common.contact_policy import fact_columns, facts_from_values
from tasks.common.run_context import RunCounts
from tasks.mail.outbox import NewMessage, prepare
from tasks.rules.calendar import WorkCalendar
from tasks.rules.contact_policy import ContactFacts
from tasks.surveys.emails import INVITATION_KIND, invitation_key, survey_context, survey_message
from tasks.surveys.rules.invitations import (
    Candidate,
    Outcome,
    SurveyRules,
    Wave,
    choose,
    csat_due_on,
    expires_at,
    resolved_window,
    unreachable_reason,
    waves,
)
from tasks.surveys.rules.periods import post_complaint_campaign, spread_day, spread_hash_sql

# Complaints whose post-complaint survey may be due: resolved (and not reopened since).
_RESOLVED = ("resolved", "verified", "closed")


@lru_cache(maxsize=64)
def group(kind: SurveyKind | str, abc_class: AbcClass | str | None) -> str:
    """The artifact's row key: survey kind and customer class (``nps:A``, ``csat:-``)."""
    klass = abc_class.value if isinstance(abc_class, AbcClass) else abc_class
    return f"{SurveyKind(kind).value}:{klass or '-'}"


@dataclass(frozen=True, slots=True)
class CsatDue:
    """A resolved complaint whose post-complaint survey is due today."""

    complaint_id: int
    reference: str
    customer_id: int
    abc_class: AbcClass | None
    due_on: date


@dataclass(frozen=True)
class SurveyContext:
    """A surveys run's inputs, loaded once and shared by every range (frozen)."""

    as_of: date
    now: datetime
    timezone: ZoneInfo
    calendar: WorkCalendar
    rules: SurveyRules
    cap_days: int
    waves: tuple[Wave, ...]
    campaign_ids: Mapping[str, int]  # code -> id (empty in a dry run for waves not started)
    csat_campaign: str
    csat_due: tuple[CsatDue, ...]
    pending_from: datetime  # complaints resolved since then may still get their survey
    expires_at: datetime  # of the invitations written in this run (and their links)


# A survey can reach a customer only with survey consent and an address: for the others the
# cap, fatigue and pending-complaint subqueries are not run (the rules skip them before that).
_REACHABLE = (
    "NOT c.survey_opt_out AND c.unsubscribed_at IS NULL AND c.email IS NOT NULL "
    "AND NOT c.email_undeliverable"
)
# The customers of a range whose wave day has come and who are not in the wave yet, with the
# contact facts and whether a post-complaint survey of theirs is due or coming (it goes first).
_SELECT = f"""
    SELECT c.id, c.abc_class, c.locale, {fact_columns(_REACHABLE)},
           CASE WHEN {_REACHABLE} AND EXISTS (
             SELECT 1 FROM complaints k
             WHERE k.customer_id = c.id AND k.status IN {_RESOLVED}
               AND k.resolved_at >= :pending_from
               AND NOT EXISTS (SELECT 1 FROM survey_invitations ki WHERE ki.complaint_id = k.id)
           ) THEN 1 ELSE 0 END AS csat_pending
    FROM customers c
"""
_PERIODIC = text(
    _SELECT
    + f"""
    WHERE c.id BETWEEN :lo AND :hi
      AND c.abc_class IN ('A', 'B', 'C')
      AND {spread_hash_sql("c.id")} < CASE c.abc_class
            WHEN 'A' THEN :bound_A WHEN 'B' THEN :bound_B ELSE :bound_C END
      AND NOT EXISTS (
            SELECT 1 FROM survey_invitations i
            WHERE i.customer_id = c.id AND i.campaign_id = CASE c.abc_class
              WHEN 'A' THEN :campaign_A WHEN 'B' THEN :campaign_B ELSE :campaign_C END)
    ORDER BY c.id
    """
).bindparams(bindparam("pending_from", type_=UTCDateTime()))
_BY_ID = text(_SELECT + " WHERE c.id IN :ids ORDER BY c.id").bindparams(
    bindparam("pending_from", type_=UTCDateTime()), id_list("ids")
)

_CSAT_DUE = text(
    f"""
    SELECT k.id, k.external_id, k.customer_id, k.resolved_at, c.abc_class
    FROM complaints k JOIN customers c ON c.id = k.customer_id
    WHERE k.status IN {_RESOLVED} AND k.resolved_at >= :start AND k.resolved_at < :end
      AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.complaint_id = k.id)
    ORDER BY k.id
    """
).bindparams(bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime()))

_CAMPAIGNS = text(
    "SELECT code, id, starts_on FROM survey_campaigns WHERE code IN :codes"
).bindparams(bindparam("codes", expanding=True))


def load_context(
    conn: Connection,
    *,
    as_of: date,
    now: datetime,
    timezone: ZoneInfo,
    calendar: WorkCalendar,
    rules: SurveyRules,
    cap_days: int,
    dry_run: bool,
) -> SurveyContext:
    """The run's inputs. Outside a dry run the day's campaigns are created here (committed by
    the caller before any range runs), so every range sees the same wave start."""
    planned = waves(as_of, rules, calendar)
    csat_code, csat_period = post_complaint_campaign(as_of)
    codes = [w.code for w in planned] + [csat_code]
    if not dry_run:
        _ensure_campaigns(conn, planned, csat_code, csat_period, now)
    found = {row.code: row for row in conn.execute(_CAMPAIGNS, {"codes": codes})}
    started = {
        code: _as_date(row.starts_on) for code, row in found.items() if row.starts_on is not None
    }
    planned = waves(as_of, rules, calendar, started)
    window = resolved_window(as_of, rules, calendar)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=timezone).astimezone(UTC)

    due = []
    for row in conn.execute(
        _CSAT_DUE,
        {"start": midnight(window.first), "end": midnight(window.last + timedelta(days=1))},
    ):
        resolved = raw_utc_datetime(row.resolved_at)
        assert resolved is not None
        due_on = csat_due_on(resolved.astimezone(timezone).date(), rules, calendar)
        klass = AbcClass(row.abc_class) if row.abc_class else None
        due.append(CsatDue(row.id, row.external_id, row.customer_id, klass, due_on))
    return SurveyContext(
        as_of=as_of,
        now=now,
        timezone=timezone,
        calendar=calendar,
        rules=rules,
        cap_days=cap_days,
        waves=tuple(planned),
        campaign_ids={code: row.id for code, row in found.items()},
        csat_campaign=csat_code,
        csat_due=tuple(due),
        pending_from=midnight(window.first),
        expires_at=expires_at(as_of, rules, timezone, now),
    )


def _as_date(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _ensure_campaigns(
    conn: Connection, planned: Sequence[Wave], csat_code: str, csat_period: str, now: datetime
) -> None:
    dialect = conn.dialect.name
    stamp = driver_timestamp(now, dialect)
    rows: list[tuple[Any, ...]] = [
        (
            w.code,
            SurveyKind.NPS.value,
            SurveyTrigger.PERIODIC.value,
            w.period.code,
            w.abc_class.value,
            driver_date(w.starts_on, dialect),
            stamp,
        )
        for w in planned
    ]
    rows.append(
        (
            csat_code,
            SurveyKind.CSAT.value,
            SurveyTrigger.POST_COMPLAINT.value,
            csat_period,
            None,
            None,
            stamp,
        )
    )
    insert_rows(
        conn,
        "survey_campaigns",
        ("code", "kind", "trigger", "period", "abc_class", "starts_on", "created_at"),
        rows,
        "ON CONFLICT (code) DO NOTHING",
    )


@dataclass(frozen=True, slots=True)
class _Row:
    customer_id: int
    abc_class: AbcClass | None
    name: str
    email: str | None
    locale: str | None
    facts: ContactFacts
    csat_pending: bool


_CLASSES = {abc.value: abc for abc in AbcClass}


def _rows(
    result: Any, tally: Counter[tuple[str, str]] | None = None, keep: Container[int] = ()
) -> dict[int, _Row]:
    """The selected rows (positionally: tens of thousands a range). With ``tally``, a periodic
    candidate no survey can reach (no survey consent, no deliverable address; see
    ``_REACHABLE``) and without a post-complaint survey due (``keep``) is only counted there,
    by the contact policy's reason: held back every day of its wave, it is most of the rows."""
    rows: dict[int, _Row] = {}
    # The unreachable by what decides their reason; the rule runs once per distinct key.
    unreachable: Counter[tuple[str | None, bool, bool]] = Counter()
    # fetchall: one driver call, not one per row (iterating a result fetches row by row).
    for cid, klass, locale, *facts, csat_pending in result.tuples().all():
        name, email, undeliverable, _, _, survey_out, unsubscribed = facts[:7]
        if tally is not None and cid not in keep:
            opted_out = bool(survey_out or unsubscribed)
            has_address = bool(email) and not undeliverable
            if opted_out or not has_address:
                unreachable[klass, opted_out, has_address] += 1
                continue
        abc = _CLASSES.get(klass) if klass else None
        rows[cid] = _Row(
            cid, abc, name, email, locale, facts_from_values(cid, *facts), bool(csat_pending)
        )
    if tally is not None:
        for (klass, opted_out, has_address), n in unreachable.items():
            reason = unreachable_reason(opted_out=opted_out, has_address=has_address)
            assert reason is not None  # only the unreachable were counted
            key = group(SurveyKind.NPS, _CLASSES.get(klass) if klass else None)
            tally[key, "due"] += n
            tally[key, f"skipped:{reason}"] += n
    return rows


def _wave_params(ctx: SurveyContext) -> dict[str, Any]:
    params: dict[str, Any] = {}
    by_class = {w.abc_class: w for w in ctx.waves}
    for abc in AbcClass:
        wave = by_class.get(abc)
        params[f"bound_{abc.value}"] = wave.bound if wave else 0
        params[f"campaign_{abc.value}"] = ctx.campaign_ids.get(wave.code, -1) if wave else -1
    return params


def invite_range(
    engine: Engine, ctx: SurveyContext, lo: int, hi: int, *, run_id: int | None, dry_run: bool
) -> RunCounts:
    """Invite the due customers ``lo..hi`` (in a dry run only count them). Counts per
    ``group``: ``due``, ``invited``, ``skipped:<reason>``; ``emails`` for the emails queued."""
    counts = RunCounts()
    csat = [d for d in ctx.csat_due if lo <= d.customer_id <= hi]
    params = {"lo": lo, "hi": hi, "pending_from": ctx.pending_from, **_wave_params(ctx)}
    tally: Counter[tuple[str, str]] = Counter()
    keep = {d.customer_id for d in csat}
    with engine.connect() as conn:
        rows = _rows(conn.execute(_PERIODIC, params), tally, keep) if ctx.waves else {}
        periodic = set(rows)
        missing = sorted({d.customer_id for d in csat} - periodic)
        if missing:
            extra = _rows(conn.execute(_BY_ID, {"ids": missing, "pending_from": ctx.pending_from}))
            rows.update(extra)
    candidates = _candidates(ctx, [rows[cid] for cid in sorted(periodic)], csat)
    outcomes = choose(
        candidates,
        {cid: row.facts for cid, row in rows.items()},
        now=ctx.now,
        rules=ctx.rules,
        cap_days=ctx.cap_days,
    )
    for (key, what), n in tally.items():
        counts.add(key, what, n)
    invites: list[Outcome] = []
    for outcome in outcomes:
        c = outcome.candidate
        key = group(c.kind, c.abc_class)
        counts.add(key, "due")
        if outcome.invite:
            invites.append(outcome)
        else:
            counts.add(key, f"skipped:{outcome.reason}")
    if dry_run or not invites:
        for outcome in invites:
            counts.add(group(outcome.candidate.kind, outcome.candidate.abc_class), "invited")
        return counts
    with engine.begin() as conn:
        created = _insert_invitations(conn, ctx, invites, run_id)
        messages = _messages(ctx, created, rows, csat, run_id)
        queued = prepare(messages, now=ctx.now, dialect=conn.dialect.name).insert(conn)
    for c in created.values():
        counts.add(group(c.kind, c.abc_class), "invited")
    counts.add("total", "emails", queued.inserted)
    return counts


def _candidates(
    ctx: SurveyContext, periodic: Sequence[_Row], csat: Sequence[CsatDue]
) -> list[Candidate]:
    """The periodic candidates (the rows the wave selection returned) and the post-complaint
    ones of the range."""
    by_class = {w.abc_class: w for w in ctx.waves}
    result = []
    for row in periodic:
        wave = by_class.get(row.abc_class) if row.abc_class else None
        if wave is None:  # a class switched off (its bound is 0: never selected)
            continue
        result.append(
            Candidate(
                row.customer_id,
                SurveyKind.NPS,
                wave.code,
                spread_day(row.customer_id, wave.days),
                row.abc_class,
                None,
                row.csat_pending,
            )
        )
    for due in csat:
        result.append(
            Candidate(
                due.customer_id,
                SurveyKind.CSAT,
                ctx.csat_campaign,
                due.due_on,
                due.abc_class,
                due.complaint_id,
            )
        )
    return result


_INVITATION_COLUMNS = (
    "campaign_id",
    "customer_id",
    "complaint_id",
    "kind",
    "abc_class",
    "due_on",
    "status",
    "created_at",
    "sent_at",
    "expires_at",
    "run_id",
)


def _insert_invitations(
    conn: Connection,
    ctx: SurveyContext,
    invites: Sequence[Outcome],
    run_id: int | None,
) -> dict[int, Candidate]:
    """Insert the invitations; returns the ones this call inserted, by invitation id (a unique
    key refuses those a concurrent run wrote first - that run queued their emails)."""
    dialect = conn.dialect.name
    stamp = driver_timestamp(ctx.now, dialect)
    expiry = driver_timestamp(ctx.expires_at, dialect)
    rows = []
    for outcome in invites:
        c = outcome.candidate
        rows.append(
            (
                ctx.campaign_ids[c.campaign_code],
                c.customer_id,
                c.complaint_id,
                c.kind.value,
                c.abc_class.value if c.abc_class else None,
                driver_date(c.due_on, dialect),
                InvitationStatus.SENT.value,
                stamp,
                stamp,
                expiry,
                run_id,
            )
        )
    # RETURNING: the rows this statement inserted, not those a conflict skipped.
    inserted = insert_rows_returning(
        conn,
        "survey_invitations",
        _INVITATION_COLUMNS,
        rows,
        "ON CONFLICT DO NOTHING",
        ("id", "customer_id", "complaint_id"),
    )
    by_key = {(o.candidate.customer_id, o.candidate.complaint_id): o.candidate for o in invites}
    return {
        invitation_id: by_key[customer_id, complaint_id]
        for invitation_id, customer_id, complaint_id in inserted
    }


def _messages(
    ctx: SurveyContext,
    created: Mapping[int, Candidate],
    rows: Mapping[int, _Row],
    csat: Sequence[CsatDue],
    run_id: int | None,
) -> list[NewMessage]:
    references = {d.complaint_id: d.reference for d in csat}
    # The last day the links work (they expire at the following local midnight).
    expires_on = (ctx.expires_at.astimezone(ctx.timezone) - timedelta(microseconds=1)).date()
    messages = []
    for invitation_id, c in sorted(created.items()):
        row = rows[c.customer_id]
        assert row.email is not None  # the contact policy let it through
        context = survey_context(
            customer_name=row.name,
            kind=c.kind,
            invitation_id=invitation_id,
            expires_at=ctx.expires_at,
            expires_on=expires_on,
            complaint_reference=references.get(c.complaint_id) if c.complaint_id else None,
        )
        messages.append(
            survey_message(
                email_kind=INVITATION_KIND,
                key=invitation_key(c.campaign_code, c.customer_id, c.complaint_id),
                customer_id=c.customer_id,
                email=row.email,
                name=row.name,
                locale=row.locale,
                context=context,
                run_id=run_id,
            )
        )
    return messages


__all__ = ["CsatDue", "SurveyContext", "group", "invite_range", "load_context"]
