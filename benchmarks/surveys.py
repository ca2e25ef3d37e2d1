"""Benchmark: one day of the surveys flow's selection and invitation writes, against a bare SQL
script selecting the same invitees and inserting the same rows.

    python benchmarks/surveys.py [--customers 1000000] [--database-url URL] [--rounds 4]

Builds its own synthetic CRM (not timed): 8 regions, 80 branches, ``--customers`` customers (A
20 %, B 50 %, C 30 %; 2 % opted out of surveys, 4 % without an email, 1 % undeliverable), 3 %
with an email two days ago (the contact cap), 2 % invited 30 days ago in an older wave (the
fatigue window), a few hundred complaints resolved over the last weeks, the default policies and
the CN calendar. The day is Monday 2026-11-23, in the middle of every wave (A 2026Q4 from 1 Oct,
B 2026H2 from 1 Jul, C 2026 from 1 Jan): every reachable customer whose wave day came before it
already has an invitation (the steady state), so the day invites its own share and meets the
customers held back every day (opted out, no address, cap, fatigue).

Timed, alternating for ``--rounds`` rounds, each after deleting the day's invitations and emails:

- flow: ``tasks.surveys.invitations.load_context`` and ``invite_range`` over every customer id
  range of the flow's default size, one after another (the IO the flow's tasks call, without
  Prefect): the wave selection with the contact facts, the pure rules, the invitations and their
  outbox rows in one transaction per range;
- baseline: one ``INSERT ... SELECT`` of the same invitations with the same rules in SQL (wave
  bounds, consent, address, cap, fatigue, a pending post-complaint survey first), then one
  ``INSERT ... SELECT`` of their outbox rows (the same columns and context keys).

Both must write the same invitations ((campaign, customer) pairs) and as many emails. After an
untimed warm-up of both, ``ratio`` = the best flow time / the best baseline time over the rounds
(target <= 1.5): on a shared machine the best of each is the least disturbed figure. The last
line is
Then the answer endpoint (``benchmarks/survey_answers.py: run_answer_benchmark``, the same
measurement): a real ``crm web`` process on a scratch database of the same backend (a temp
SQLite file; a throwaway database on the ``--database-url`` server), ``--answers`` invitations
answered by ``--concurrency`` clients: ``answers_per_s`` closed loop, ``p99_ms`` open loop
(target < 50 ms). ``--answers 0`` skips it.

The last line is ``RESULT ratio=… answers_per_s=… p99_ms=… peak_rss_mb=… flow_s=…
baseline_s=… invited=… web_peak_rss_mb=… load_1m=…`` (``peak_rss_mb``: this process, the flow
side; ``web_peak_rss_mb``: the ``crm web`` server).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import peak_rss_mb, print_result, say  # noqa: E402

AS_OF = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 Shanghai, the deployment's hour
WAVE_STARTS = {"A": date(2026, 10, 1), "B": date(2026, 7, 1), "C": date(2026, 1, 1)}
REGIONS, BRANCHES_PER_REGION = 8, 10
CHUNK = 50_000
RANGE_SIZE = 250_000  # the flow's default


def build_dataset(url: str, customers: int, seed: int) -> None:
    from sqlalchemy import bindparam, text

    from crm_db import migrate
    from crm_db.bulk import driver_date, driver_timestamp, insert_rows
    from crm_db.defaults import ensure_default_policies
    from crm_db.session import make_engine, session_scope
    from crm_db.types import UTCDateTime

    engine = make_engine(url)
    migrate.upgrade(engine)
    with session_scope(engine) as session:
        ensure_default_policies(session, now=NOW)
    dialect = engine.dialect.name
    rng = np.random.default_rng(seed)
    stamp = driver_timestamp(NOW - timedelta(days=400), dialect)
    with engine.begin() as conn:
        insert_rows(
            conn,
            "regions",
            ("id", "code", "name"),
            [(r, f"R{r:02d}", f"片区{r}") for r in range(1, REGIONS + 1)],
        )
        insert_rows(
            conn,
            "branches",
            ("id", "code", "name", "region_id"),
            [
                (b, f"B{b:03d}", f"油站{b}", (b - 1) // BRANCHES_PER_REGION + 1)
                for b in range(1, REGIONS * BRANCHES_PER_REGION + 1)
            ],
        )
    columns = (
        "id", "external_id", "name", "email", "card_type", "branch_id", "first_card_on",
        "email_undeliverable", "locale", "timezone", "marketing_opt_out", "survey_opt_out",
        "abc_pinned", "abc_class", "created_at",
    )  # fmt: skip
    first_card = driver_date(date(2024, 1, 1), dialect)
    branches = REGIONS * BRANCHES_PER_REGION
    for lo in range(1, customers + 1, CHUNK):
        n = min(CHUNK, customers - lo + 1)
        klass = rng.choice(np.array(["A", "B", "C"]), n, p=[0.2, 0.5, 0.3])
        opted = rng.random(n) < 0.02
        no_email = rng.random(n) < 0.04
        bounced = rng.random(n) < 0.01
        rows = [
            (
                cid,
                f"C{cid}",
                f"客户{cid}",
                None if no_email[i] else f"c{cid}@example.test",
                "personal",
                cid % branches + 1,
                first_card,
                bool(bounced[i]),
                "en" if cid % 20 == 0 else "zh-CN",
                "Asia/Shanghai",
                False,
                bool(opted[i]),
                False,
                str(klass[i]),
                stamp,
            )
            for i, cid in enumerate(range(lo, lo + n))
        ]
        with engine.begin() as conn:
            insert_rows(conn, "customers", columns, rows)
    ids = np.arange(1, customers + 1)
    capped = ids[rng.random(customers) < 0.03]
    fatigued = ids[rng.random(customers) < 0.02]
    complained = rng.choice(ids, max(1, customers // 3000), replace=False)
    outbox_columns = (
        "idempotency_key", "kind", "locale", "recipient_email", "recipient_name", "customer_id",
        "context", "status", "attempts", "next_attempt_at", "message_id", "created_at",
    )  # fmt: skip
    sent = driver_timestamp(NOW - timedelta(days=2), dialect)
    with engine.begin() as conn:
        insert_rows(
            conn,
            "email_outbox",
            outbox_columns,
            [
                (f"bench:care:{c}", "revisit_care", "zh-CN", f"c{c}@example.test", f"客户{c}",
                 int(c), "{}", "sent", 1, sent, f"<care.{c}@bench>", sent)
                for c in capped.tolist()
            ],
        )  # fmt: skip
        old = conn.execute(
            text(
                "INSERT INTO survey_campaigns (code, kind, trigger, period, created_at) "
                "VALUES ('nps:2026Q3:old', 'nps', 'periodic', '2026Q3', :t) RETURNING id"
            ).bindparams(bindparam("t", type_=UTCDateTime())),
            {"t": NOW - timedelta(days=60)},
        ).scalar_one()
        earlier = driver_timestamp(NOW - timedelta(days=30), dialect)
        expired = driver_timestamp(NOW - timedelta(days=16), dialect)
        insert_rows(
            conn,
            "survey_invitations",
            ("campaign_id", "customer_id", "kind", "status", "created_at", "expires_at"),
            [(old, int(c), "nps", "expired", earlier, expired) for c in fatigued.tolist()],
        )
        for i, c in enumerate(complained.tolist()):
            resolved = NOW - timedelta(days=int(rng.integers(0, 30)), hours=3)
            conn.execute(
                text(
                    "INSERT INTO complaints (external_id, customer_id, category, severity, "
                    "status, description, source, received_at, resolved_at, "
                    "paused_business_minutes, reopened_count) VALUES (:ref, :c, '充值到账', "
                    "'normal', 'resolved', '', 'import', :received, :resolved, 0, 0)"
                ).bindparams(
                    bindparam("received", type_=UTCDateTime()),
                    bindparam("resolved", type_=UTCDateTime()),
                ),
                {"ref": f"CP{i}", "c": c, "received": resolved - timedelta(days=2),
                 "resolved": resolved},
            )  # fmt: skip
    _history(engine)
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def _context(engine: Any) -> Any:
    from crm_core.settings import get_settings
    from crm_db.session import session_scope
    from tasks.common import policies
    from tasks.common.calendars import load_work_calendar
    from tasks.surveys.invitations import load_context
    from tasks.surveys.policies import survey_rules

    with session_scope(engine) as session:
        return load_context(
            session.connection(),
            as_of=AS_OF,
            now=NOW,
            timezone=get_settings().tz,
            calendar=load_work_calendar(session),
            rules=survey_rules(session),
            cap_days=policies.contact_cap_days(session),
            dry_run=False,
        )


def _waves(engine: Any, day: date) -> list[Any]:
    from crm_db.session import session_scope
    from tasks.common.calendars import load_work_calendar
    from tasks.surveys.policies import survey_rules
    from tasks.surveys.rules.invitations import waves
    from tasks.surveys.rules.periods import period_of, periodic_campaign_code

    with session_scope(engine) as session:
        rules = survey_rules(session)
        calendar = load_work_calendar(session)
    started = {
        periodic_campaign_code(period_of(day, rules.periods[k]), k): WAVE_STARTS[k.value]
        for k in rules.periods
    }
    return waves(day, rules, calendar, started)


def _history(engine: Any) -> None:
    """The waves' campaigns (started at their period's start) and an invitation for every
    reachable customer whose wave day came before the benchmark's day."""
    from sqlalchemy import Date, bindparam, text

    from crm_db.types import UTCDateTime
    from tasks.surveys.rules.periods import spread_hash_sql

    yesterday = _waves(engine, AS_OF - timedelta(days=1))
    today = _waves(engine, AS_OF)
    with engine.begin() as conn:
        for wave in today:
            conn.execute(
                text(
                    "INSERT INTO survey_campaigns (code, kind, trigger, period, abc_class, "
                    "starts_on, created_at) VALUES (:code, 'nps', 'periodic', :period, :k, "
                    ":start, :t)"
                ).bindparams(bindparam("t", type_=UTCDateTime()), bindparam("start", type_=Date())),
                {"code": wave.code, "period": wave.period.code, "k": wave.abc_class.value,
                 "start": wave.starts_on, "t": NOW - timedelta(days=60)},
            )  # fmt: skip
        for wave in yesterday:
            campaign = conn.execute(
                text("SELECT id FROM survey_campaigns WHERE code = :code"), {"code": wave.code}
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO survey_invitations (campaign_id, customer_id, kind, abc_class, "
                    "status, created_at, sent_at, expires_at) "
                    f"SELECT :campaign, c.id, 'nps', c.abc_class, 'expired', :t, :t, :t "
                    f"FROM customers c WHERE c.abc_class = :k AND {spread_hash_sql('c.id')} "
                    "< :bound AND c.email IS NOT NULL AND NOT c.email_undeliverable "
                    "AND NOT c.survey_opt_out AND NOT EXISTS (SELECT 1 FROM survey_invitations "
                    "f WHERE f.customer_id = c.id)"
                ).bindparams(bindparam("t", type_=UTCDateTime())),
                {"campaign": campaign, "k": wave.abc_class.value, "bound": wave.bound,
                 "t": NOW - timedelta(days=120)},
            )  # fmt: skip


def run_flow(engine: Any) -> tuple[float, int]:
    from tasks.revisits.planning import customer_id_ranges
    from tasks.surveys.invitations import invite_range

    t0 = time.perf_counter()
    ctx = _context(engine)
    invited = 0
    for lo, hi in customer_id_ranges(engine, RANGE_SIZE):
        counts = invite_range(engine, ctx, lo, hi, run_id=None, dry_run=False)
        invited += counts.total("invited")
    return time.perf_counter() - t0, invited


_BASELINE_INVITE = """
INSERT INTO survey_invitations (campaign_id, customer_id, kind, abc_class, due_on, status,
                                created_at, sent_at, expires_at)
SELECT CASE c.abc_class WHEN 'A' THEN :campaign_A WHEN 'B' THEN :campaign_B ELSE :campaign_C END,
       c.id, 'nps', c.abc_class, :as_of, 'sent', :now, :now, :expires
FROM customers c
WHERE c.abc_class IN ('A', 'B', 'C')
  AND {hash} < CASE c.abc_class WHEN 'A' THEN :bound_A WHEN 'B' THEN :bound_B ELSE :bound_C END
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.customer_id = c.id
        AND i.campaign_id = CASE c.abc_class WHEN 'A' THEN :campaign_A WHEN 'B' THEN :campaign_B
                            ELSE :campaign_C END)
  AND {eligible}
  AND NOT EXISTS (SELECT 1 FROM complaints k WHERE k.customer_id = c.id
        AND k.status IN ('resolved', 'verified', 'closed') AND k.resolved_at >= :pending_from
        AND NOT EXISTS (SELECT 1 FROM survey_invitations ki WHERE ki.complaint_id = k.id))
"""
_ELIGIBLE = """
  NOT c.survey_opt_out AND c.unsubscribed_at IS NULL
  AND c.email IS NOT NULL AND NOT c.email_undeliverable
  AND NOT EXISTS (SELECT 1 FROM email_outbox e WHERE e.customer_id = c.id
        AND e.status NOT IN ('failed', 'suppressed') AND e.created_at > :cap_from)
  AND NOT EXISTS (SELECT 1 FROM survey_invitations s WHERE s.customer_id = c.id
        AND s.created_at > :fatigue_from)
"""
_BASELINE_CSAT = """
INSERT INTO survey_invitations (campaign_id, customer_id, complaint_id, kind, abc_class, due_on,
                                status, created_at, sent_at, expires_at)
SELECT :campaign_csat, c.id, k.id, 'csat', c.abc_class, :as_of, 'sent', :now, :now, :expires
FROM complaints k JOIN customers c ON c.id = k.customer_id
WHERE k.status IN ('resolved', 'verified', 'closed')
  AND k.resolved_at >= :resolved_from AND k.resolved_at < :resolved_to
  AND NOT EXISTS (SELECT 1 FROM survey_invitations i WHERE i.complaint_id = k.id)
  AND {eligible}
"""
_BASELINE_OUTBOX = """
INSERT INTO email_outbox (idempotency_key, kind, locale, recipient_email, recipient_name,
                          customer_id, context, status, attempts, next_attempt_at, message_id,
                          created_at)
SELECT CASE WHEN i.complaint_id IS NULL THEN 'survey:' || m.code || ':customer:' || c.id
            ELSE 'survey:csat:complaint:' || i.complaint_id END,
       'survey_invitation', c.locale, c.email, c.name, c.id,
       {json}('customer_name', c.name, 'survey', i.kind, 'invitation_id', i.id,
              'expires_at', CAST(:expires_iso AS VARCHAR(40)),
              'expires_on', CAST(:expires_on AS VARCHAR(10)),
              'complaint_reference', k.external_id),
       'pending', 0, :now, '<' || i.id || '.bench@example.test>', :now
FROM survey_invitations i
JOIN customers c ON c.id = i.customer_id
JOIN survey_campaigns m ON m.id = i.campaign_id
LEFT JOIN complaints k ON k.id = i.complaint_id
WHERE i.created_at = :now
"""


def run_baseline(engine: Any) -> tuple[float, int]:
    from sqlalchemy import Date, bindparam, text

    from crm_db.types import UTCDateTime
    from tasks.surveys.rules.invitations import resolved_window
    from tasks.surveys.rules.periods import spread_hash_sql

    t0 = time.perf_counter()
    ctx = _context(engine)  # the same wave bounds and campaigns, read the same way
    params: dict[str, Any] = {
        "as_of": AS_OF,
        "now": NOW,
        "expires": ctx.expires_at,
        "cap_from": NOW - timedelta(days=ctx.cap_days),
        "fatigue_from": NOW - timedelta(days=ctx.rules.fatigue_days),
        "pending_from": ctx.pending_from,
    }
    window = resolved_window(AS_OF, ctx.rules, ctx.calendar)
    params["resolved_from"] = ctx.pending_from
    params["resolved_to"] = datetime.combine(
        window.last + timedelta(days=1), time_of_day(0), tzinfo=ctx.timezone
    ).astimezone(UTC)
    params["campaign_csat"] = ctx.campaign_ids[ctx.csat_campaign]
    for wave in ctx.waves:
        params[f"bound_{wave.abc_class.value}"] = wave.bound
        params[f"campaign_{wave.abc_class.value}"] = ctx.campaign_ids[wave.code]
    stamps = [bindparam("as_of", type_=Date())] + [bindparam(k, type_=UTCDateTime()) for k in
              ("now", "expires", "cap_from", "fatigue_from", "pending_from", "resolved_from",
               "resolved_to")]  # fmt: skip

    def typed(sql: str) -> Any:
        return text(sql).bindparams(*(p for p in stamps if f":{p.key}" in sql))

    json = "json_build_object" if engine.dialect.name == "postgresql" else "json_object"
    with engine.begin() as conn:
        # Post-complaint first: the CSAT invitations, then the waves (which skip customers
        # with a complaint whose survey is due or coming).
        invited = conn.execute(typed(_BASELINE_CSAT.format(eligible=_ELIGIBLE)), params).rowcount
        invited += conn.execute(
            typed(_BASELINE_INVITE.format(hash=spread_hash_sql("c.id"), eligible=_ELIGIBLE)),
            params,
        ).rowcount
        conn.execute(
            text(_BASELINE_OUTBOX.format(json=json)).bindparams(stamps[1]),
            {
                "now": NOW,
                "expires_iso": ctx.expires_at.isoformat(),
                "expires_on": (AS_OF + timedelta(days=ctx.rules.expiry_days)).isoformat(),
            },
        )
    return time.perf_counter() - t0, invited


def written(engine: Any) -> tuple[set[tuple[int, int]], int]:
    from sqlalchemy import bindparam, text

    from crm_db.types import UTCDateTime

    with engine.connect() as conn:
        pairs = conn.execute(
            text(
                "SELECT campaign_id, customer_id FROM survey_invitations WHERE created_at = :now"
            ).bindparams(bindparam("now", type_=UTCDateTime())),
            {"now": NOW},
        ).all()
        emails = conn.execute(
            text("SELECT count(*) FROM email_outbox WHERE kind = 'survey_invitation'")
        ).scalar_one()
    return {(int(a), int(b)) for a, b in pairs}, int(emails)


def reset_day(engine: Any) -> None:
    from sqlalchemy import bindparam, text

    from crm_db.types import UTCDateTime

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM email_outbox WHERE kind = 'survey_invitation'"))
        conn.execute(
            text("DELETE FROM survey_invitations WHERE created_at = :now").bindparams(
                bindparam("now", type_=UTCDateTime())
            ),
            {"now": NOW},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default=None, help="an EMPTY scratch database (default: temp SQLite)"
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--answers", type=int, default=2000, help="answer endpoint: invitations answered (0: skip)"
    )
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--answer-seconds", type=float, default=120.0, help="answer endpoint: time bound"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-surveys-"))
    url = args.database_url or f"sqlite:///{workdir / 'crm.sqlite3'}"
    os.environ["CRM_VAR_DIR"] = str(workdir)
    os.environ["CRM_DATABASE_URL"] = url
    from crm_db.session import make_engine

    backend = url.split(":", 1)[0]
    say(f"building {args.customers:,} customers on {backend} ...")
    t0 = time.perf_counter()
    build_dataset(url, args.customers, args.seed)
    say(f"  built in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(url)
    # Untimed warm-up of both sides: imports, statement caches, the file cache.
    for warm in (run_flow, run_baseline):
        reset_day(engine)
        warm(engine)
    best = {"flow": float("inf"), "baseline": float("inf")}
    invited = 0
    for round_no in range(1, args.rounds + 1):
        order = ("flow", "baseline") if round_no % 2 else ("baseline", "flow")
        times: dict[str, float] = {}
        seen: dict[str, tuple[set[tuple[int, int]], int]] = {}
        for side in order:
            reset_day(engine)
            elapsed, count = (run_flow if side == "flow" else run_baseline)(engine)
            times[side] = elapsed
            seen[side] = written(engine)
            if side == "flow":
                invited = count
        if seen["flow"][0] != seen["baseline"][0] or seen["flow"][1] != seen["baseline"][1]:
            only_flow = len(seen["flow"][0] - seen["baseline"][0])
            only_base = len(seen["baseline"][0] - seen["flow"][0])
            raise SystemExit(
                f"round {round_no}: the flow and the baseline wrote different invitations "
                f"({only_flow} only by the flow, {only_base} only by the baseline; emails "
                f"{seen['flow'][1]} vs {seen['baseline'][1]})"
            )
        ratio = times["flow"] / times["baseline"]
        say(
            f"round {round_no}: flow {times['flow']:.3f} s, baseline {times['baseline']:.3f} s, "
            f"ratio {ratio:.2f}, invited {len(seen['flow'][0]):,}"
        )
        for side, elapsed in times.items():
            best[side] = min(best[side], elapsed)
    invited_ids = written(engine)[0]
    engine.dispose()
    answers = _answers(args, url, workdir)
    load = os.getloadavg()
    say(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print_result(
        ratio=best["flow"] / best["baseline"],
        answers_per_s=answers.answers.per_s if answers else 0.0,
        p99_ms=answers.paced.p99_ms if answers else 0.0,
        peak_rss_mb=peak_rss_mb(),
        flow_s=best["flow"],
        baseline_s=best["baseline"],
        invited=len(invited_ids) or invited,
        web_peak_rss_mb=answers.server_peak_rss_mb if answers else 0.0,
        load_1m=load[0],
    )


def _answers(args: argparse.Namespace, url: str, workdir: Path) -> Any:
    """The answer endpoint's measurement on a fresh database of the same backend, or None."""
    from benchmarks.survey_answers import run_answer_benchmark, scratch_postgres_database

    if args.answers <= 0:
        return None
    options = {
        "answers": args.answers,
        "concurrency": args.concurrency,
        "max_seconds": args.answer_seconds,
        "workdir": workdir,
    }
    if url.startswith("sqlite"):
        return run_answer_benchmark(f"sqlite:///{workdir / 'answers.sqlite3'}", **options)
    with scratch_postgres_database(url) as scratch:
        return run_answer_benchmark(scratch, **options)


if __name__ == "__main__":
    main()
