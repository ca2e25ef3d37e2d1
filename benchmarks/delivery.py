"""Delivery benchmark: our outbox delivery against the raw SMTP ceiling and two peers.

    .venv/bin/python benchmarks/delivery.py --n 100000 [--database-url URL] [--concurrency 8]
                                            [--peer-sample 2000] [--latency-ms 0]

Every path sends to the same counting aiosmtpd sink running in a separate process
(``_smtp_sink_process.py``; it writes no files).

(a) end to end: N outbox rows (3 ``revisit_care`` : 1 ``revisit_digest``, realistic contexts,
    inserted first and not timed, via ``tasks.mail.outbox.enqueue``) are claimed, rendered, built,
    sent and marked sent by ``tasks.mail.deliver.deliver_due``, in a fresh process whose peak RSS
    is reported (so seeding and the other measurements do not inflate it);
(b) the ceiling: aiosmtplib ``sendmail`` of pre-built bytes over ``--concurrency`` connections;
(c) peers on ``--peer-sample`` messages, each given pre-rendered subject/text/HTML (rendering not
    timed for them, so they do less work than (a)): a plain ``smtplib`` loop (one connection,
    ``build_message`` + ``send_message``), and ``prefect-email``'s ``email_send_message`` task, one
    call per message inside a flow, on a temporary Prefect API started by
    ``prefect.testing.utilities.prefect_test_harness`` (its start-up is not timed).

Messages are built with the stock ``EmailMessage`` (``tasks.mail.message``); (a) builds them in
a ``ProcessPoolExecutor`` worker (``tasks.mail.build``) unless ``CRM_BUILD_WORKERS=0``.

Besides wall time it reports CPU milliseconds per message of the sending process - for (a) the
delivering process plus its build workers (``RUSAGE_CHILDREN``, read after the pool has been
shut down and reaped) - and of the sink: on a shared machine (2 cores here) wall-clock rates
move with other people's load, CPU per message much less. After (a) it checks that the sink
received exactly N distinct Message-IDs, equal to the rows' Message-IDs, and that every row is
``sent``; after (b) and the smtplib peer, that exactly N (sample) distinct Message-IDs arrived;
after prefect-email, the count (it sets no Message-ID). Any mismatch exits non-zero.
The last line is
``RESULT msgs_per_s=… ceiling_msgs_per_s=… latency_ms=… ratio_to_ceiling=… vs_prefect_email=…
vs_smtplib=… peak_rss_mb=…`` (``vs_*``: end-to-end messages per second over the peer's, same run;
``peak_rss_mb``: the delivering process's peak plus each build worker's, the largest child's
peak counted once per worker - an upper bound).

``--latency-ms N``: the sink waits N ms before each reply, as a relay across a network does
(``_smtp_sink_process``): every path then pays one round trip per SMTP command, so the rate is
bound by the connections' round trips rather than the CPU, and what (a) adds between two
messages on a connection (the wait for the durable mark, the claims, renewals) shows in the
ratio. The RESULT line then carries ``latency_ms``. With latency the peers are skipped unless
``--peer-sample`` is given (one connection at 80+ ms a message would take minutes);
``--peer-sample 0`` skips them always (no ``vs_*`` fields).

The default database is a temporary SQLite file migrated with ``crm_db.migrate.upgrade``. With
``--database-url`` use a scratch database: the run adds its own customers, staff and outbox rows
(tagged with a run id), and delivery drains every due row in that database.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import random
import resource
import shutil
import smtplib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project's packages importable

from benchmarks._common import peak_rss_mb, result_line, say  # noqa: E402
from benchmarks._smtp_sink_process import SinkProcess, SinkSnapshot  # noqa: E402

SENDER = "CRM Flows <crm@bench.example.test>"
BASE_URL = "https://crm.bench.example.test"
SECRET = "benchmark-secret-key-0123456789-abcdefghijklmnop"
CARE_PER_DIGEST = 3  # the mix: three customer care mails per staff digest
ENQUEUE_CHUNK = 2000
MAX_MANAGERS = 500

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛"]
EN_NAMES = ["Li Na", "Wang Wei", "Anna Schmidt", "John Carter", "Chen Jie", "Maria Rossi"]
ISSUES = [
    "加油卡充值后余额未及时到账",
    "发票开具延迟",
    "油站排队时间过长",
    "车队卡副卡额度调整",
    "积分兑换失败",
    "The receipt showed the wrong amount",
]


def _env_for_run(work: Path, database_url: str, port: int, concurrency: int) -> None:
    """Settings come from the environment, so the delivering child process sees the same ones."""
    os.environ.update(
        {
            "CRM_VAR_DIR": str(work / "var"),
            "CRM_DATABASE_URL": database_url,
            "CRM_SMTP_HOST": "127.0.0.1",
            "CRM_SMTP_PORT": str(port),
            "CRM_SMTP_TLS": "none",
            "CRM_SMTP_CONCURRENCY": str(concurrency),
            "CRM_MAIL_FROM": SENDER,
            "CRM_PUBLIC_BASE_URL": BASE_URL,
            "CRM_SECRET_KEY": SECRET,
            "CRM_MODE": "demo",
        }
    )


def own_peak_rss_mb() -> float:
    """Peak RSS of this process's own memory. In a spawned child, ``ru_maxrss`` (what
    ``_common.peak_rss_mb`` reads) still includes the parent's RSS at fork time, because Linux
    folds the forked image's high-water mark into it at exec; ``VmHWM`` belongs to the current
    image only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


# ------------------------------------------------------------------ seeding (not timed)


def _person(rng: random.Random, locale: str) -> str:
    if locale == "en":
        return rng.choice(EN_NAMES)
    return rng.choice(SURNAMES) + rng.choice(GIVEN)


@dataclass
class Seeded:
    customers: list[tuple[int, str, str, str]]  # id, email, name, locale
    managers: list[tuple[int, str, str, str]]


def seed_people(engine: Any, n_customers: int, n_managers: int, tag: str) -> Seeded:
    from sqlalchemy import insert, select

    from crm_db.models import Branch, Customer, Region, Staff

    rng = random.Random(7)
    with engine.begin() as conn:
        region_id = conn.execute(
            insert(Region).values(code=f"R-{tag}", name="华东片区").returning(Region.id)
        ).scalar_one()
        branch_id = conn.execute(
            insert(Branch)
            .values(code=f"B-{tag}", name="西湖油站", region_id=region_id)
            .returning(Branch.id)
        ).scalar_one()
        staff_rows = []
        for i in range(n_managers):
            locale = "en" if i % 5 == 4 else "zh-CN"
            staff_rows.append(
                {
                    "external_id": f"{tag}-s{i}",
                    "name": _person(rng, locale),
                    "email": f"am{i}.{tag}@bench.example.test",
                    "locale": locale,
                    "role": "account_manager",
                    "region_id": region_id,
                    "branch_id": branch_id,
                }
            )
        conn.execute(insert(Staff), staff_rows)
        for start in range(0, n_customers, 10_000):
            conn.execute(
                insert(Customer),
                [
                    {
                        "external_id": f"{tag}-c{i}",
                        "name": _person(rng, "en" if i % 5 == 4 else "zh-CN"),
                        "email": f"c{i}.{tag}@bench.example.test",
                        "locale": "en" if i % 5 == 4 else "zh-CN",
                        "card_type": ("personal", "company", "fleet")[i % 3],
                        "branch_id": branch_id,
                        "first_card_on": date(2024, 1, 1) + timedelta(days=i % 700),
                    }
                    for i in range(start, min(start + 10_000, n_customers))
                ],
            )
        managers = [
            (r.id, r.email, r.name, r.locale)
            for r in conn.execute(
                select(Staff.id, Staff.email, Staff.name, Staff.locale)
                .where(Staff.external_id.like(f"{tag}-%"))
                .order_by(Staff.id)
            )
        ]
        customers = [
            (r.id, r.email, r.name, r.locale)
            for r in conn.execute(
                select(Customer.id, Customer.email, Customer.name, Customer.locale)
                .where(Customer.external_id.like(f"{tag}-%"))
                .order_by(Customer.id)
            )
        ]
    return Seeded(customers=customers, managers=managers)


def care_context(rng: random.Random, customer_name: str, manager_name: str) -> dict[str, Any]:
    # No feedback_url or unsubscribe_url: delivery signs both into every care email (as in
    # production), so their cost is part of what (a) measures.
    return {
        "customer_name": customer_name,
        "manager_name": manager_name,
        "manager_phone": f"0571-8{rng.randrange(1000):03d} {rng.randrange(10000):04d}",
        "last_contact_date": (date(2026, 1, 1) + timedelta(days=rng.randrange(60))).isoformat(),
        "last_issue": rng.choice(ISSUES),
    }


def digest_context(
    rng: random.Random, manager_id: int, manager_name: str, day: date, now: datetime
) -> dict[str, Any]:
    from tasks.mail.links import revisit_outcome_url

    items = []
    for _ in range(rng.randint(3, 12)):
        overdue = rng.choice([0, 0, 0, 2, 10])
        items.append(
            {
                "customer_name": _person(rng, "zh-CN"),
                "customer_class": rng.choice("AABBBCC"),
                "phone": rng.choice([None, f"138****{rng.randrange(10000):04d}"]),
                "channel": rng.choice(["visit", "phone", "email"]),
                "due_date": (day - timedelta(days=overdue)).isoformat(),
                "overdue_days": overdue,
                "last_contact_date": rng.choice(
                    [None, (day - timedelta(days=rng.randint(30, 200))).isoformat()]
                ),
                "last_contact_outcome": rng.choice(
                    [None, "completed", "issue_raised", "no_answer"]
                ),
                "open_complaints": rng.choice([0, 0, 0, 1, 2]),
                "last_survey_score": rng.choice([None, 3, 6, 8, 9, 10]),
                "trend_90d_pct": rng.choice([None, -23.5, -5.0, 0.0, 4.2, 12.0]),
                "outcome_url": revisit_outcome_url(
                    rng.randrange(10**7),
                    staff_id=manager_id,
                    key=SECRET.encode(),
                    base_url=BASE_URL,
                    now=now,
                ),
                "needs_reassignment": rng.random() < 0.05,
            }
        )
    return {
        "manager_name": manager_name,
        "date": day.isoformat(),
        "items": items,
        # What the revisits flow now passes too: the day's counts, the full-list link, the
        # customers handed over and the revisits deferred by capacity.
        "total_count": len(items),
        "overdue_count": sum(1 for item in items if item["overdue_days"]),
        "more_count": 0,
        "list_url": f"{BASE_URL}/m/bench-{manager_id}",
        "reassigned": [],
        "reassigned_count": 0,
        "deferred": rng.choice([0, 0, 3]),
        "deferred_until": (day + timedelta(days=5)).isoformat(),
    }


def planned_messages(seeded: Seeded, n: int, tag: str, now: datetime) -> Iterator[Any]:
    """N messages, interleaved 3 care : 1 digest, each with its own idempotency key (customers
    are reused only when N exceeds them, which happens for the peers' sample on a small run)."""
    from tasks.mail.outbox import NewMessage

    rng = random.Random(42)
    managers = seeded.managers
    care = itertools.cycle(seeded.customers)
    digests_made = 0
    for i in range(n):
        if i % (CARE_PER_DIGEST + 1) == CARE_PER_DIGEST:
            mid, email, name, locale = managers[digests_made % len(managers)]
            day = date(2026, 3, 2) - timedelta(days=digests_made // len(managers))
            digests_made += 1
            yield NewMessage(
                idempotency_key=f"bench:{tag}:revisit_digest:{day}:staff:{mid}",
                kind="revisit_digest",
                locale=locale,
                recipient_email=email,
                recipient_name=name,
                customer_id=None,
                staff_id=mid,
                context=digest_context(rng, mid, name, day, now),
            )
        else:
            cid, email, name, locale = next(care)
            yield NewMessage(
                idempotency_key=f"bench:{tag}:revisit_care:2026-03-02:customer:{cid}",
                kind="revisit_care",
                locale=locale,
                recipient_email=email,
                recipient_name=name,
                customer_id=cid,
                staff_id=None,
                context=care_context(rng, name, _person(rng, locale)),
            )


def enqueue_all(engine: Any, seeded: Seeded, n: int, tag: str, now: datetime) -> int:
    from crm_db.session import session_scope
    from tasks.mail.outbox import enqueue

    inserted = 0
    batch: list[Any] = []
    for message in planned_messages(seeded, n, tag, now):
        batch.append(message)
        if len(batch) == ENQUEUE_CHUNK:
            with session_scope(engine) as session:
                inserted += enqueue(session, batch, now=now).inserted
            batch = []
    if batch:
        with session_scope(engine) as session:
            inserted += enqueue(session, batch, now=now).inserted
    return inserted


# ------------------------------------------------------------------ (a) end to end


def _deliver_worker(conn: Connection, now_iso: str) -> None:
    """Runs in a fresh process: imports and engine set-up first, then only deliver_due is timed."""
    from sqlalchemy import func, select

    from crm_core.settings import get_settings
    from crm_db.enums import OutboxStatus
    from crm_db.models import OutboxMessage
    from crm_db.session import make_engine
    from tasks.mail.deliver import deliver_due

    settings = get_settings()
    engine = make_engine(settings.database_url)
    now = datetime.fromisoformat(now_iso)
    rss_before = own_peak_rss_mb()
    reports = []
    cpu0 = time.process_time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    # deliver_due drains everything due; the loop only guards against an implementation that
    # stops after one pass, and is bounded so a bug cannot spin forever.
    for _ in range(5):
        reports.append(deliver_due(engine, settings, now=now))
        with engine.connect() as c:
            left = c.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.PENDING)
            ).scalar_one()
        if left == 0:
            break
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    # Build workers are shut down and reaped at the end of each deliver_due call, so their
    # CPU and peak RSS are in RUSAGE_CHILDREN by now.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (children.ru_utime - children0.ru_utime) + (
        children.ru_stime - children0.ru_stime
    )
    from tasks.mail.build import build_workers

    workers = build_workers()
    engine.dispose()
    conn.send(
        {
            "seconds": seconds,
            "cpu_seconds": cpu + children_cpu,
            "own_cpu_seconds": cpu,
            "children_cpu_seconds": children_cpu,
            "workers": workers,
            "child_peak_rss_mb": children.ru_maxrss / 1024,
            "calls": len(reports),
            "reports": [_report_dict(r) for r in reports],
            "rss_before_mb": rss_before,
            "peak_rss_mb": own_peak_rss_mb(),
        }
    )


def _report_dict(report: Any) -> Any:
    if is_dataclass(report) and not isinstance(report, type):
        return {k: v for k, v in asdict(report).items() if not isinstance(v, list | dict)}
    return repr(report)


def run_end_to_end(now: datetime) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_deliver_worker, args=(child, now.isoformat()))
    process.start()
    child.close()
    try:
        result: dict[str, Any] = parent.recv()
    except EOFError:
        process.join()
        raise SystemExit(f"FAIL: the delivering process died (exit {process.exitcode})") from None
    process.join()
    return result


def verify_end_to_end(engine: Any, tag: str, n: int, snapshot: SinkSnapshot) -> list[str]:
    from sqlalchemy import func, select

    from crm_db.enums import OutboxStatus
    from crm_db.models import OutboxMessage

    problems = []
    mine = OutboxMessage.idempotency_key.like(f"bench:{tag}:%")
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                select(OutboxMessage.status, func.count())
                .where(mine)
                .group_by(OutboxMessage.status)
            ).all()
        )
        ids = {
            mid.strip("<>").encode()
            for (mid,) in conn.execute(select(OutboxMessage.message_id).where(mine))
        }
    sent = by_status.get(OutboxStatus.SENT, 0)
    if sent != n:
        problems.append(f"rows sent {sent} of {n} (by status: {by_status})")
    received = {mid.strip(b"<>") for mid in snapshot.message_ids}
    if snapshot.messages != n:
        problems.append(f"sink received {snapshot.messages} messages, expected {n}")
    if snapshot.distinct_ids != n:
        problems.append(f"sink received {snapshot.distinct_ids} distinct Message-IDs, expected {n}")
    if received != ids:
        problems.append(
            f"Message-IDs differ: {len(ids - received)} rows not received, "
            f"{len(received - ids)} unknown received"
        )
    return problems


# ------------------------------------------------------------------ (b) ceiling and (c) peers


@dataclass(frozen=True)
class Sample:
    recipient_email: str
    recipient_name: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str | None


def render_samples(seeded: Seeded, count: int, now: datetime) -> list[Sample]:
    """Rendered messages with the same mix and contexts as (a); rendering here is not timed."""
    from tasks.mail.links import care_feedback_url, unsubscribe_url
    from tasks.mail.render import render_email

    samples = []
    for number, message in enumerate(planned_messages(seeded, count, "sample", now), 1):
        context = dict(message.context)
        unsubscribe = None
        if message.customer_id is not None:
            unsubscribe = unsubscribe_url(
                message.customer_id, key=SECRET.encode(), base_url=BASE_URL, now=now
            )
            context["unsubscribe_url"] = unsubscribe
        if message.kind == "revisit_care":  # the same links delivery signs in, same size
            context["feedback_url"] = care_feedback_url(
                number, key=SECRET.encode(), base_url=BASE_URL, now=now
            )
        rendered = render_email(message.kind, message.locale, context, base_url=BASE_URL)
        samples.append(
            Sample(
                message.recipient_email,
                message.recipient_name,
                rendered.subject,
                rendered.text,
                rendered.html,
                unsubscribe,
            )
        )
    return samples


def _built(sample: Sample, message_id: str, now: datetime) -> Any:
    from tasks.mail.message import build_message
    from tasks.mail.render import RenderedEmail

    return build_message(
        message_id=message_id,
        sender=SENDER,
        recipient_email=sample.recipient_email,
        recipient_name=sample.recipient_name,
        rendered=RenderedEmail(sample.subject, sample.text, sample.html),
        date=now,
        unsubscribe_url=sample.unsubscribe_url,
    )


PLACEHOLDER = "PLACEHOLDER0000000000000000000000"


def prebuilt_templates(samples: list[Sample], now: datetime) -> list[tuple[str, bytes, bytes]]:
    """(recipient, bytes before the Message-ID's local part, bytes after): splicing a unique id
    in costs a microsecond, so N messages need not all be held in memory at once."""
    from tasks.mail.message import message_bytes

    templates = []
    for sample in samples[: CARE_PER_DIGEST + 1]:
        raw = message_bytes(_built(sample, f"<{PLACEHOLDER}@bench.example.test>", now))
        before, _, after = raw.partition(PLACEHOLDER.encode())
        templates.append((sample.recipient_email, before, after))
    return templates


async def _send_prebuilt(
    port: int, templates: list[tuple[str, bytes, bytes]], n: int, concurrency: int
) -> None:
    import aiosmtplib

    counter = iter(range(n))
    sender = "crm@bench.example.test"

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, use_tls=False)
        await smtp.connect()
        for i in counter:
            rcpt, before, after = templates[i % len(templates)]
            await smtp.sendmail(sender, [rcpt], b"%s%032x%s" % (before, i, after))
        await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def run_ceiling(
    port: int, templates: list[tuple[str, bytes, bytes]], n: int, conc: int
) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(_send_prebuilt(port, templates, n, conc))
    return time.perf_counter() - started, time.process_time() - cpu


def run_smtplib_peer(port: int, samples: list[Sample], now: datetime) -> tuple[float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i, sample in enumerate(samples):
            smtp.send_message(_built(sample, f"<smtplib-{i}@bench.example.test>", now))
    return time.perf_counter() - started, time.process_time() - cpu


def _prefect_email_worker(
    conn: Connection, port: int, samples: list[Sample], log_path: str
) -> None:
    """In its own process: Prefect's import, logging set-up and temporary API stay out of ours.
    Its console output (the temporary server's shutdown tracebacks, offline telemetry errors)
    goes to ``log_path``, shown only if the peer fails."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    from crm_core.prefect_env import configure_prefect_env

    configure_prefect_env()
    # Console logging of 2 x N task-state lines would flood the output; quieter also means
    # slightly faster, which only favours the peer.
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness
    from prefect_email import EmailServerCredentials, email_send_message

    credentials = EmailServerCredentials(
        smtp_server="127.0.0.1", smtp_type="INSECURE", smtp_port=port
    )

    @flow(name="prefect-email-peer")
    async def send_all() -> tuple[float, float]:
        cpu, started = time.process_time(), time.perf_counter()
        for sample in samples:
            await email_send_message(
                subject=sample.subject,
                msg=sample.html,
                msg_plain=sample.text,
                email_server_credentials=credentials,
                email_from=SENDER,
                email_to=sample.recipient_email,
            )
        return time.perf_counter() - started, time.process_time() - cpu

    with prefect_test_harness(server_startup_timeout=120):
        timing = asyncio.run(send_all())
    conn.send(timing)


def run_prefect_email_peer(port: int, samples: list[Sample], work: Path) -> tuple[float, float]:
    log_path = work / "prefect-email-peer.log"
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_prefect_email_worker, args=(child, port, samples, str(log_path))
    )
    process.start()
    child.close()
    try:
        seconds, cpu = parent.recv()
    except EOFError:
        process.join()
        tail = log_path.read_text(errors="replace")[-4000:] if log_path.exists() else ""
        raise SystemExit(
            f"FAIL: prefect-email peer died (exit {process.exitcode}); its log:\n{tail}"
        ) from None
    process.join()
    return float(seconds), float(cpu)


@dataclass(frozen=True)
class Measured:
    name: str
    messages: int
    seconds: float
    cpu_seconds: float  # the sending process (the delivering process for (a))
    sink_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def row(self, ceiling_rate: float) -> str:
        per = 1000 / self.messages
        return (
            f"  {self.name:<38} {self.messages:>7} {self.seconds:>8.2f} {self.rate:>7.0f} "
            f"{self.rate / ceiling_rate:>7.3f} {self.cpu_seconds * per:>11.3f} "
            f"{self.sink_cpu_seconds * per:>11.3f}"
        )


def measure(
    sink: SinkProcess,
    name: str,
    count: int,
    run: Callable[[], tuple[float, float]],
    *,
    with_ids: bool = True,
) -> Measured:
    """Run one sending path against the freshly reset sink and check what arrived."""
    sink_cpu = sink.snapshot().cpu_seconds
    seconds, cpu = run()
    snapshot = sink.snapshot()
    if snapshot.messages != count or (with_ids and snapshot.distinct_ids != count):
        raise SystemExit(
            f"FAIL: {name}: sink received {snapshot.messages} messages "
            f"({snapshot.distinct_ids} distinct Message-IDs), expected {count}"
        )
    sink.reset()
    return Measured(name, count, seconds, cpu, snapshot.cpu_seconds - sink_cpu)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Delivery benchmark: outbox delivery vs the raw SMTP ceiling and peers."
    )
    parser.add_argument("--n", type=int, default=100_000, help="messages end to end and ceiling")
    parser.add_argument("--database-url", help="scratch database (default: temp SQLite file)")
    parser.add_argument("--concurrency", type=int, default=8, help="SMTP connections")
    parser.add_argument(
        "--peer-sample",
        type=int,
        default=None,
        help="messages per peer (default 2000; with --latency-ms, 0: peers skipped)",
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="the sink's wait before each reply"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args(argv)
    if args.peer_sample is None:
        args.peer_sample = 0 if args.latency_ms else 2000
    if args.n < CARE_PER_DIGEST + 1 or args.peer_sample < 0 or args.latency_ms < 0:
        parser.error("--n must be at least 4, --peer-sample and --latency-ms at least 0")

    work = Path(tempfile.mkdtemp(prefix="crm-bench-delivery-"))
    database_url = args.database_url or f"sqlite:///{work / 'crm.sqlite3'}"
    tag = uuid.uuid4().hex[:8]
    sink = SinkProcess(latency_ms=args.latency_ms)
    sink.start()
    try:
        _env_for_run(work, database_url, sink.port, args.concurrency)
        return _run(args, work, database_url, tag, sink)
    finally:
        sink.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, database_url: str, tag: str, sink: Any) -> int:
    from crm_db import migrate
    from crm_db.session import make_engine

    n, conc = args.n, args.concurrency
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    n_digest = n // (CARE_PER_DIGEST + 1)
    n_care = n - n_digest
    started = time.perf_counter()
    seeded = seed_people(engine, n_care, max(1, min(MAX_MANAGERS, n_digest)), tag)
    inserted = enqueue_all(engine, seeded, n, tag, now)
    seed_s = time.perf_counter() - started
    if inserted != n:
        raise SystemExit(f"FAIL: enqueued {inserted} rows, expected {n}")
    db_name = engine.dialect.name
    say(f"delivery benchmark: n={n} ({n_care} revisit_care + {n_digest} revisit_digest),")
    say(
        f"  database={db_name}, concurrency={conc}, peer sample={args.peer_sample}, "
        f"sink latency {args.latency_ms:g} ms a reply"
    )
    say(f"  setup (not timed): seeded and enqueued {n} rows in {seed_s:.1f} s")
    say(f"  load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    # (a) end to end, in a fresh process
    sink_cpu = sink.snapshot().cpu_seconds
    e2e = run_end_to_end(now)
    snapshot = sink.snapshot()
    problems = verify_end_to_end(engine, tag, n, snapshot)
    engine.dispose()
    if problems:
        for problem in problems:
            say(f"FAIL: {problem}")
        return 1
    sink.reset()
    end_to_end = Measured(
        "(a) end to end: deliver_due",
        n,
        e2e["seconds"],
        e2e["cpu_seconds"],
        snapshot.cpu_seconds - sink_cpu,
    )
    say(f"  deliver_due: {e2e['calls']} call(s), reports {e2e['reports']}")
    peak_all = e2e["peak_rss_mb"] + e2e["workers"] * e2e["child_peak_rss_mb"]
    say(
        f"  delivering process: RSS {e2e['rss_before_mb']:.0f} MB after imports, "
        f"peak {e2e['peak_rss_mb']:.0f} MB; {e2e['workers']} build worker(s), peak "
        f"{e2e['child_peak_rss_mb']:.0f} MB each at most; all: {peak_all:.0f} MB"
    )
    say(
        f"  CPU: delivering process {e2e['own_cpu_seconds']:.1f} s + build workers "
        f"{e2e['children_cpu_seconds']:.1f} s"
    )
    say(f"  verified: {n} rows sent, sink got exactly {n} distinct matching Message-IDs")

    # (b) ceiling
    samples = render_samples(seeded, max(args.peer_sample, CARE_PER_DIGEST + 1), now)
    templates = prebuilt_templates(samples, now)
    ceiling = measure(
        sink,
        f"(b) ceiling: aiosmtplib bytes x{conc}",
        n,
        lambda: run_ceiling(sink.port, templates, n, conc),
    )

    # (c) peers
    peers: list[Measured] = []
    if args.peer_sample:
        peer_samples = samples[: args.peer_sample]
        k = len(peer_samples)
        peers.append(
            measure(
                sink,
                "(c) smtplib loop, 1 connection",
                k,
                lambda: run_smtplib_peer(sink.port, peer_samples, now),
            )
        )
        # prefect-email sets no Message-ID header, so only the count can be checked.
        peers.append(
            measure(
                sink,
                "(c) prefect-email task per message",
                k,
                lambda: run_prefect_email_peer(sink.port, peer_samples, work),
                with_ids=False,
            )
        )

    ratio = end_to_end.rate / ceiling.rate
    say("")
    say(
        f"  {'path':<38} {'msgs':>7} {'seconds':>8} {'msgs/s':>7} {'vs ceil':>7} "
        f"{'CPU ms/msg':>11} {'sink ms/msg':>11}"
    )
    for measured in (end_to_end, ceiling, *peers):
        say(measured.row(ceiling.rate))
    cpu_ratio = (ceiling.cpu_seconds / ceiling.messages) / (end_to_end.cpu_seconds / n)
    say(
        f"  sender CPU per message, ceiling / end to end: {cpu_ratio:.3f} "
        f"(steadier than wall time on a shared machine; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    say(f"  peak RSS of the delivering process and its build workers: {peak_all:.0f} MB")
    fields: dict[str, object] = {
        "msgs_per_s": round(end_to_end.rate),
        "ceiling_msgs_per_s": round(ceiling.rate),
        "latency_ms": int(args.latency_ms) if args.latency_ms.is_integer() else args.latency_ms,
        "ratio_to_ceiling": round(ratio, 3),
    }
    if peers:
        smtplib_loop, prefect_email = peers
        vs_prefect = end_to_end.rate / prefect_email.rate
        vs_smtplib = end_to_end.rate / smtplib_loop.rate
        say(
            f"  end to end vs prefect-email {vs_prefect:.2f}x (target >= 3), "
            f"vs smtplib loop {vs_smtplib:.2f}x (target >= 1.0)"
        )
        fields.update(vs_prefect_email=round(vs_prefect, 2), vs_smtplib=round(vs_smtplib, 2))
    fields["peak_rss_mb"] = round(peak_all)
    say(result_line(**fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
