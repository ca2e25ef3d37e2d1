"""Rendering and building messages in worker processes, so the delivering event loop only
claims, sends and settles.

Per message, render + ``EmailMessage`` build + serialise cost about 0.8 ms of CPU, as much as
the rest of delivery (claim, send, settle) together; in one process they share one core. Here
they run in ``build_workers()`` child processes, fed chunks of ``CHUNK`` rows per round trip
(pickling a chunk costs a few µs per row), while the parent keeps every decision that touches
the row's state (lease, consent suppression, the unsubscribe link, the outcome).

A worker is a plain ``python -m tasks.mail.build_pool`` child speaking length-prefixed pickle
frames on its stdin/stdout (our own two processes, no untrusted input). It is not a
``multiprocessing`` pool on purpose: when the parent is killed (``kill -9``), the worker reads
end-of-file on stdin and exits, so no process outlives a crashed delivery run. When a worker
dies, the futures of its chunks fail with ``WorkerGone``; the caller releases those rows
(they were never sent) and builds in-process for the rest of the run.

``CRM_BUILD_WORKERS`` (environment, read per run): how many worker processes; default ``auto``
= 1 on a machine with at least 2 CPUs, 0 (build in-process, the loop does everything) on one
CPU. ``0`` turns the pool off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any, BinaryIO, NamedTuple

from crm_core.process_count import process_count

log = logging.getLogger(__name__)

# Rows per round trip: big enough that framing and wake-ups are noise, small enough that the
# first chunk comes back quickly and a dead worker costs few releases.
CHUNK = 100
# Chunks queued on one worker at once: one being built, one waiting (so it never idles).
MAX_IN_FLIGHT = 2
# Runs that claim fewer rows than this build in-process: a worker costs ~0.5 s to start.
MIN_ROWS = 200
WORKERS_ENV = "CRM_BUILD_WORKERS"
_HEADER = struct.Struct("!I")
_STOP_TIMEOUT_S = 5.0


class BuildJob(NamedTuple):
    """What a worker needs to build one row's message (decided in the parent)."""

    kind: str
    locale: str
    context: dict[str, Any]  # the row's context as queued
    message_id: str
    recipient_email: str
    recipient_name: str
    unsubscribe_customer: int | None  # sign an unsubscribe link for this customer
    outbox_id: int | None = None  # the row being built: links that name the email use it


class WorkerGone(RuntimeError):
    """The worker process exited (or was killed) before answering."""


def build_workers() -> int:
    """Worker processes to use (``CRM_BUILD_WORKERS``; see the module docstring)."""
    return process_count(WORKERS_ENV, auto=1 if (os.cpu_count() or 1) >= 2 else 0, maximum=8)


# ---------------------------------------------------------------- the build itself (both sides)


def build_one(
    job: BuildJob, *, sender: str, base_url: str, date: datetime, key: bytes
) -> bytes | str:
    """The message bytes, or the error text that fails this row (a bad template or context
    fails the row, never the run). ``date`` is the Date header and the signing time of the
    unsubscribe and feedback links; ``key`` signs them."""
    from tasks.mail.kinds import KINDS
    from tasks.mail.links import care_feedback_url, unsubscribe_url
    from tasks.mail.message import build_message, message_bytes
    from tasks.mail.render import render_email

    unsubscribe: str | None = None
    context = job.context
    if job.unsubscribe_customer is not None:
        unsubscribe = unsubscribe_url(
            job.unsubscribe_customer, key=key, base_url=base_url, now=date
        )
        context = {**context, "unsubscribe_url": unsubscribe}
    kind = KINDS.get(job.kind)
    if kind is not None and kind.feedback_link:
        # Always set for such kinds (the templates need the key): the link when the outbox row
        # is known; without one, the email asks for a reply instead.
        feedback = None
        if job.outbox_id is not None:
            feedback = care_feedback_url(job.outbox_id, key=key, base_url=base_url, now=date)
        context = {**context, "feedback_url": feedback}
    try:
        rendered = render_email(job.kind, job.locale, context, base_url=base_url)
        message = build_message(
            message_id=job.message_id,
            sender=sender,
            recipient_email=job.recipient_email,
            recipient_name=job.recipient_name,
            rendered=rendered,
            date=date,
            unsubscribe_url=unsubscribe,
        )
        return message_bytes(message)
    except Exception as exc:
        return f"render: {exc.__class__.__name__}: {exc}"


def _build_chunk(
    jobs: Sequence[BuildJob], sender: str, base_url: str, date: datetime, key: bytes
) -> list[bytes | str]:
    return [build_one(job, sender=sender, base_url=base_url, date=date, key=key) for job in jobs]


# ---------------------------------------------------------------- the worker process


def _read_frame(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # the parent closed our stdin (or died): time to go
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def _write_frame(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def worker_main() -> None:
    """Serve chunks until stdin ends. The first frame pins what the parent's renderer would
    take from its settings, so both sides render identically."""
    channel_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    channel_out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    # Anything else that writes to stdout must not corrupt the frames.
    os.dup2(2, 1)
    from tasks.mail import render

    first = _read_frame(channel_in)
    if first is None:
        return
    company, default_base = first
    render.pin_settings_defaults(company, default_base)
    # Import and compile everything before saying we are ready.
    from tasks.mail.message import build_message  # noqa: F401

    _write_frame(channel_out, "ready")
    while True:
        request = _read_frame(channel_in)
        if request is None:
            return
        _write_frame(channel_out, _build_chunk(*request))


# ---------------------------------------------------------------- the parent's side


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: deque[asyncio.Future[list[bytes | str]]] = deque()
        self.ready = False
        self.gone = False
        self.stopping = False  # we closed its stdin: end-of-file from it is expected
        self.reader: asyncio.Task[None] | None = None

    async def read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(_HEADER.size)
                (size,) = _HEADER.unpack(header)
                value = pickle.loads(await stdout.readexactly(size))
                if value == "ready":
                    self.ready = True
                    continue
                future = self.pending.popleft()
                if not future.done():
                    future.set_result(value)
        except (asyncio.IncompleteReadError, ConnectionError, IndexError) as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            self._fail(None)
            raise

    def _fail(self, exc: BaseException | None) -> None:
        if not self.gone and not self.stopping and exc is not None:
            log.warning("outbox: a build worker stopped (%s)", exc.__class__.__name__)
        self.gone = True
        self.ready = False
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(WorkerGone("build worker exited before answering"))


class BuildPool:
    """``workers`` build processes; ``submit`` sends a chunk to the least busy ready one."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @classmethod
    async def start(cls, count: int, *, company: str, default_base_url: str) -> BuildPool:
        workers = []
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tasks.mail.build_pool",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            worker = _Worker(proc)
            worker.reader = asyncio.create_task(worker.read_loop())
            assert proc.stdin is not None
            data = pickle.dumps((company, default_base_url), protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.write(_HEADER.pack(len(data)) + data)
            workers.append(worker)
        return cls(workers)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    @property
    def alive(self) -> bool:
        """False once every worker has gone: the caller builds in-process from then on."""
        return any(not w.gone for w in self._workers)

    @property
    def any_ready(self) -> bool:
        """True when some worker is up (so a full pool is worth waiting for)."""
        return any(w.ready for w in self._workers)

    def submit(
        self, jobs: list[BuildJob], *, sender: str, base_url: str, date: datetime, key: bytes
    ) -> asyncio.Future[list[bytes | str]] | None:
        """A future for the chunk's results (in ``jobs`` order), or None when no worker is
        ready with room (still starting, busy or gone): the caller builds in-process."""
        ready = [w for w in self._workers if w.ready and len(w.pending) < MAX_IN_FLIGHT]
        if not ready:
            return None
        worker = min(ready, key=lambda w: len(w.pending))
        stdin = worker.proc.stdin
        assert stdin is not None
        # The signing key travels on the pipe (never argv or the environment).
        request = (jobs, sender, base_url, date, key)
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        future: asyncio.Future[list[bytes | str]] = asyncio.get_running_loop().create_future()
        try:
            stdin.write(_HEADER.pack(len(data)) + data)
        except (ConnectionError, RuntimeError) as exc:
            worker._fail(exc)
            return None
        worker.pending.append(future)
        return future

    async def stop(self) -> None:
        """Close every worker's stdin (it exits on end-of-file) and wait; kill what lingers."""
        for worker in self._workers:
            worker.stopping = True
            stdin = worker.proc.stdin
            if stdin is not None and not stdin.is_closing():
                stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.proc.wait(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("outbox: a build worker did not exit; killing it")
                worker.proc.kill()
                await worker.proc.wait()
            if worker.reader is not None:
                worker.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader

    def kill(self) -> None:
        """Last resort (a hung worker, or the loop is going away): no process may outlive the
        run. The workers are gone from this moment, not from when their end-of-file is read:
        a caller waiting for a free slot must see ``alive`` false and build in-process, and
        every chunk still pending fails now (``WorkerGone``) - waiting for the reader to notice
        the exit could leave nobody to wake that caller."""
        for worker in self._workers:
            if worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
            worker.stopping = True  # its end-of-file is expected now: no warning
            worker._fail(None)


if __name__ == "__main__":
    worker_main()
