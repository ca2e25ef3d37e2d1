"""Benchmark: the survey answer endpoint (``POST /s/{token}``) of a real ``crm web`` process
under a local load generator, on SQLite and PostgreSQL.

    python benchmarks/survey_answers.py [--answers 2000] [--concurrency 50] [--max-seconds 120]
                                        [--postgres-url URL] [--backends sqlite,postgres]

Per backend: a scratch database (a temp SQLite file; a throwaway database created on the
PostgreSQL server and dropped afterwards), migrated, with ``--answers`` sent NPS invitations of
as many customers; then ``crm web`` is started as its own process (uvicorn, access log on, as
deployed) with the per-client brake raised out of the way (every request comes from 127.0.0.1).
The load generator (httpx async client, ``--concurrency`` connections, bounded in count and in
``--max-seconds``) runs, in this order:

- baseline: ``GET /healthz`` as many times, closed loop (the framework and the loop, no
  database), and baseline@: half as many open loop at the rate of answers@ below;
- pages: ``GET /s/{token}?score=9`` for every invitation (the one-click link: a read);
- answers: ``POST /s/{token}`` (score, a rating and a suggestion: the recording path) for half
  of the invitations, closed loop - each client sends its next answer as soon as the last is
  answered: the throughput (``answers_per_s``). With N clients back to back the latency is
  N / throughput by construction (Little's law), so this phase's p99 says little;
- answers@: the other half, open loop - each of the ``--concurrency`` clients starts one answer
  every 1 / ``--rate`` seconds (customers clicking, 50 answers/s offered by default): the
  latency at that load (``p99_ms``, target < 50 ms).
Every answer must be 200 and the database must hold exactly one response per invitation.

Reported per backend: requests/s and p50/p99 latency of each phase, ``ratio`` = the answers'
open-loop p99 / the baseline's open-loop p99 (same clients, same offered load: what recording
adds on this machine as loaded now), the server's peak RSS, the load average. The last line
is ``RESULT backend=… answers_per_s=… p99_ms=… closed_p99_ms=… baseline_p99_ms=… ratio=…
peak_rss_mb=… load_1m=…`` for the slowest backend (by open-loop p99).
``run_answer_benchmark`` is the function ``benchmarks/surveys.py`` can call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import print_result, say  # noqa: E402

SECRET = "benchmark-signing-key-0123456789abcdef-xyz"
FORM = {"content-type": "application/x-www-form-urlencoded"}
BODY = "score=9&product_rating=4&service_rating=5&suggestion=%E5%8A%A0%E6%B2%B9%E5%BE%88%E5%BF%AB"


@dataclass(frozen=True)
class Phase:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    retried: int = 0

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Measurement:
    backend: str
    baseline: Phase
    paced_baseline: Phase  # /healthz open loop at the same offered load
    pages: Phase
    answers: Phase  # closed loop: throughput
    paced: Phase  # open loop at the stated rate per client: latency
    recorded: int
    server_peak_rss_mb: float

    @property
    def ratio(self) -> float:
        """Open-loop answers against open-loop /healthz at the same offered load: what the
        recording path adds to the p99 the machine gives the bare framework right now."""
        base = self.paced_baseline.p99_ms
        return self.paced.p99_ms / base if base else 0.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def _load(
    base_url: str,
    requests: list[tuple[str, str, str | None]],
    concurrency: int,
    deadline: float,
    interval_s: float = 0.0,
) -> Phase:
    """Send ``requests`` (method, path, body) over ``concurrency`` connections, each worker
    taking the next one; stop at ``deadline`` (monotonic). ``interval_s`` 0: closed loop (each
    client sends its next request as soon as the last is answered: the throughput); else each
    client starts one request every ``interval_s`` (open loop: customers clicking, the latency
    at that offered load; a client that falls behind sends at once)."""
    latencies: list[float] = []
    retried: list[str] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def worker(offset: float) -> None:
            next_start = time.monotonic() + offset
            for method, path, body in queue:
                if time.monotonic() > deadline:
                    return
                if interval_s:
                    await asyncio.sleep(max(0.0, next_start - time.monotonic()))
                    next_start += interval_s
                started = time.perf_counter()
                try:
                    response = await client.request(
                        method, path, content=body, headers=FORM if body else None
                    )
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # uvicorn closed a kept-alive connection as it was reused (its 5 s idle
                    # timeout, under load): send again on a new one. Safe for the POST too:
                    # a repeat of the same answer is idempotent (the same thanks, 200).
                    retried.append(path)
                    response = await client.request(
                        method, path, content=body, headers=FORM if body else None
                    )
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        # Open loop: the clients' starts spread evenly over one interval.
        await asyncio.gather(*(worker(interval_s * i / concurrency) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Phase(
        name="",
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        statuses=statuses,
        retried=len(retried),
    )


def _seed(url: str, answers: int, now: datetime) -> list[str]:
    """``answers`` customers, one NPS campaign, one sent invitation each; their tokens."""
    from crm_core.signing import token_hash
    from crm_db import migrate
    from crm_db.models import Customer, SurveyInvitation
    from crm_db.session import make_engine
    from tasks.mail.links import survey_answer_token

    engine = make_engine(url)
    migrate.upgrade(engine)
    expires = now + timedelta(days=14)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO regions (id, code, name) VALUES (1, 'R1', '东区片区')"))
        conn.execute(
            text("INSERT INTO branches (id, code, name, region_id) VALUES (1, 'B1', '一号站', 1)")
        )
        conn.execute(
            text(
                "INSERT INTO survey_campaigns (id, code, kind, trigger, period, created_at) "
                "VALUES (1, 'nps:2026Q4:A', 'nps', 'periodic', '2026Q4', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            insert(Customer),
            [
                {
                    "id": i,
                    "external_id": f"C{i:07d}",
                    "name": f"客户{i}",
                    "email": f"c{i}@example.test",
                    "card_type": "personal",
                    "branch_id": 1,
                    "first_card_on": now.date(),
                    "created_at": now,
                }
                for i in range(1, answers + 1)
            ],
        )
        tokens = [
            survey_answer_token(i, key=SECRET.encode(), expires_at=expires)
            for i in range(1, answers + 1)
        ]
        conn.execute(
            insert(SurveyInvitation),
            [
                {
                    "id": i,
                    "campaign_id": 1,
                    "customer_id": i,
                    "kind": "nps",
                    "token_hash": token_hash(tokens[i - 1]),
                    "status": "sent",
                    "created_at": now - timedelta(days=1),
                    "sent_at": now - timedelta(days=1),
                    "expires_at": expires,
                }
                for i in range(1, answers + 1)
            ],
        )
        if engine.dialect.name == "postgresql":
            for table in ("customers", "survey_invitations", "survey_campaigns"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :n)"),
                    {"n": answers + 1},
                )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return tokens


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _crm_web(url: str, workdir: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CRM_DATABASE_URL": url,
        "CRM_SECRET_KEY": SECRET,
        "CRM_PUBLIC_BASE_URL": base,
        "CRM_VAR_DIR": str(workdir),
        # Every request of the load generator comes from 127.0.0.1: lift the brake.
        "CRM_WEB_ANSWER_REQUESTS_PER_MINUTE": "1000000",
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "crm"), "web"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read().decode() if server.stderr else ""
                raise SystemExit(f"crm web did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield base, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _peak_rss_mb(pid: int) -> float:
    """The server's high-water mark (VmHWM), read while it runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _count_responses(url: str) -> int:
    from crm_db.session import make_engine

    engine = make_engine(url, create=False)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM survey_responses")).scalar_one())
    engine.dispose()
    return count


def run_answer_benchmark(
    url: str,
    *,
    answers: int,
    concurrency: int,
    max_seconds: float,
    workdir: Path,
    per_client_rate: float = 1.0,
) -> Measurement:
    """Seed ``url`` (an empty database), serve it with ``crm web``, measure the three phases."""
    backend = make_url(url).get_backend_name()
    now = datetime.now(UTC)
    say(f"[{backend}] seeding {answers:,} invitations ...")
    tokens = _seed(url, answers, now)
    with _crm_web(url, workdir) as (base, pid):
        deadline = time.monotonic() + max_seconds
        phases = []
        plan: tuple[tuple[str, list[tuple[str, str, str | None]]], ...] = (
            ("baseline", [("GET", "/healthz", None)] * answers),
            ("baseline@", [("GET", "/healthz", None)] * (answers - answers // 2)),
            ("pages", [("GET", f"/s/{token}?score=9", None) for token in tokens]),
            ("answers", [("POST", f"/s/{token}", BODY) for token in tokens[: answers // 2]]),
            ("answers@", [("POST", f"/s/{token}", BODY) for token in tokens[answers // 2 :]]),
        )
        for name, requests in plan:
            interval = 1.0 / per_client_rate if name.endswith("@") else 0.0
            phase = asyncio.run(_load(base, requests, concurrency, deadline, interval))
            phase = Phase(
                name,
                phase.requests,
                phase.seconds,
                phase.p50_ms,
                phase.p99_ms,
                phase.statuses,
                phase.retried,
            )
            say(
                f"[{backend}] {name:8s} {phase.requests:6d} requests in {phase.seconds:6.2f} s: "
                f"{phase.per_s:7.1f}/s, p50 {phase.p50_ms:6.1f} ms, p99 {phase.p99_ms:6.1f} ms, "
                f"statuses {phase.statuses}, resent {phase.retried}"
            )
            phases.append(phase)
        rss = _peak_rss_mb(pid)
    recorded = _count_responses(url)
    measurement = Measurement(
        backend, phases[0], phases[1], phases[2], phases[3], phases[4], recorded, rss
    )
    sent = 0
    for phase in (measurement.answers, measurement.paced):
        # A phase the time bound cut short sent fewer; every answer it sent must have recorded.
        if set(phase.statuses) - {200}:
            raise SystemExit(f"[{backend}] not every answer was recorded: {phase.statuses}")
        sent += phase.requests
    if recorded != sent:
        raise SystemExit(f"[{backend}] {recorded} responses stored for {sent} answers")
    return measurement


@contextmanager
def scratch_postgres_database(server_url: str) -> Iterator[str]:
    """A throwaway database on the server ``server_url`` names, dropped afterwards."""
    server = make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"crm_bench_answers_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="per backend")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CRM_TEST_POSTGRES_URL"),
        help="a PostgreSQL server to create a scratch database on (default: CRM_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="answers per second per client, open loop"
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="crm-bench-answers-") as tmp:
        workdir = Path(tmp)
        for backend in backends:
            if backend == "sqlite":
                url = f"sqlite:///{workdir / 'crm.sqlite3'}"
                results.append(
                    run_answer_benchmark(
                        url,
                        answers=args.answers,
                        concurrency=args.concurrency,
                        max_seconds=args.max_seconds,
                        workdir=workdir,
                        per_client_rate=args.rate,
                    )
                )
            elif backend == "postgres":
                if not args.postgres_url:
                    raise SystemExit("postgres: set --postgres-url or CRM_TEST_POSTGRES_URL")
                with scratch_postgres_database(args.postgres_url) as url:
                    results.append(
                        run_answer_benchmark(
                            url,
                            answers=args.answers,
                            concurrency=args.concurrency,
                            max_seconds=args.max_seconds,
                            workdir=workdir,
                        )
                    )
            else:
                raise SystemExit(f"unknown backend {backend!r} (sqlite, postgres)")
    load = os.getloadavg()
    say(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    for m in results:
        say(
            f"{m.backend}: answers {m.answers.per_s:.1f}/s closed loop (p99 "
            f"{m.answers.p99_ms:.1f} ms); at {m.paced.per_s:.1f}/s offered by "
            f"{args.concurrency} clients p99 {m.paced.p99_ms:.1f} ms (target < 50); /healthz "
            f"at that load p99 {m.paced_baseline.p99_ms:.1f} ms, ratio {m.ratio:.2f}; pages p99 "
            f"{m.pages.p99_ms:.1f} ms; server peak RSS {m.server_peak_rss_mb:.0f} MiB"
        )
    worst = max(results, key=lambda m: m.paced.p99_ms)
    print_result(
        backend=worst.backend,
        answers_per_s=worst.answers.per_s,
        p99_ms=worst.paced.p99_ms,
        closed_p99_ms=worst.answers.p99_ms,
        baseline_p99_ms=worst.paced_baseline.p99_ms,
        ratio=worst.ratio,
        peak_rss_mb=max(m.server_peak_rss_mb for m in results),
        load_1m=load[0],
    )


if __name__ == "__main__":
    main()
