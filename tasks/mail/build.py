"""Rendering and building messages, in the delivering process or in a stdlib process pool.

Per message, render + ``EmailMessage`` build + serialise cost about a millisecond of CPU, more
than the rest of delivery (claim, send, settle) together; in one process they share one core.
``BuildExecutor`` runs them in ``build_workers()`` processes of a
``concurrent.futures.ProcessPoolExecutor`` (spawned: the delivering process has threads, and a
fork would copy their locks), fed chunks of ``CHUNK`` rows, while the parent keeps every
decision that touches the row's state (lease, consent suppression, the outcome).

No build can make delivery wait forever:

* a worker that hangs ends itself: each chunk runs under ``faulthandler.dump_traceback_later``
  with ``exit=True`` (a watchdog thread in C, so it fires even inside a stuck C call); the
  executor then reports ``BrokenProcessPool`` for every chunk it still held;
* the parent waits on each chunk with a timeout longer than that, as a second line;
* a worker that dies (killed, crashed) breaks the executor at once (``BrokenProcessPool``).

Either way the caller releases the chunk's rows (they were never sent) and builds in-process
for the rest of the run. A worker also watches its parent (``multiprocessing.parent_process``'s
sentinel) and exits when the parent dies, so a delivering process killed with SIGKILL leaves no
child behind.

``CRM_BUILD_WORKERS`` (environment, read per run): how many worker processes; default ``auto``
= one per CPU (at most 4) on a machine with at least 2 CPUs, 0 (build in-process) on one CPU;
``0`` turns it off. Building is the largest CPU cost, so on 2 CPUs two workers beat one: the
delivering process itself needs well under half a core.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing.connection import wait
from typing import Any, NamedTuple

from crm_core.process_count import process_count
from tasks.mail.message import Attachment

log = logging.getLogger(__name__)

# Rows per chunk: big enough that pickling and wake-ups are noise, small enough that the first
# chunk comes back quickly and a lost worker costs few releases.
CHUNK = 100
# Chunks handed to the executor at once per worker: one being built, one waiting.
MAX_IN_FLIGHT_PER_WORKER = 2
# Runs that claim fewer rows than this build in-process: a spawned worker costs ~1 s to start.
MIN_ROWS = 200
WORKERS_ENV = "CRM_BUILD_WORKERS"
# A chunk of CHUNK messages takes well under a second; a worker still inside one after this
# long is stuck and ends itself.
WORKER_HANG_S = 30.0
# The parent gives up on a chunk after this long (the worker's own watchdog fires first).
CHUNK_TIMEOUT_S = WORKER_HANG_S + 15.0


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
    date: datetime | None = None  # the Date header and link signing time (default: the call's)
    attachments: tuple[Attachment, ...] = ()


class BuildLost(RuntimeError):
    """The worker building a chunk died, hung, or the executor was shut down."""


def build_workers() -> int:
    """Worker processes to use (``CRM_BUILD_WORKERS``; see the module docstring)."""
    cpus = os.cpu_count() or 1
    return process_count(WORKERS_ENV, auto=min(cpus, 4) if cpus >= 2 else 0, maximum=8)


def build_one(
    job: BuildJob, *, sender: str, base_url: str, date: datetime, key: bytes
) -> bytes | str:
    """The message bytes, or the error text that fails this row (a bad template or context
    fails the row, never the run). The Date header and the signing time of the unsubscribe and
    feedback links are ``job.date`` (the row's creation: a retry rebuilds the same bytes), else
    ``date``; ``key`` signs the links."""
    from tasks.mail.kinds import KINDS
    from tasks.mail.links import care_feedback_url, unsubscribe_url
    from tasks.mail.message import build_message, message_bytes
    from tasks.mail.render import render_email

    when = job.date or date
    unsubscribe: str | None = None
    context = job.context
    if job.unsubscribe_customer is not None:
        unsubscribe = unsubscribe_url(
            job.unsubscribe_customer, key=key, base_url=base_url, now=when
        )
        context = {**context, "unsubscribe_url": unsubscribe}
    kind = KINDS.get(job.kind)
    if kind is not None and kind.feedback_link:
        # Always set for such kinds (the templates need the key): the link when the outbox row
        # is known; without one, the email asks for a reply instead.
        feedback = None
        if job.outbox_id is not None:
            feedback = care_feedback_url(job.outbox_id, key=key, base_url=base_url, now=when)
        context = {**context, "feedback_url": feedback}
    if kind is not None and kind.survey_links:
        context = {
            **context,
            "score_links": survey_score_links(context, key=key, base_url=base_url),
        }
    try:
        rendered = render_email(job.kind, job.locale, context, base_url=base_url)
        message = build_message(
            message_id=job.message_id,
            sender=sender,
            recipient_email=job.recipient_email,
            recipient_name=job.recipient_name,
            rendered=rendered,
            date=when,
            unsubscribe_url=unsubscribe,
            attachments=job.attachments,
            reply_to=context.get("reply_to") or None,
        )
        return message_bytes(message)
    except Exception as exc:
        return f"render: {exc.__class__.__name__}: {exc}"


def survey_score_links(
    context: dict[str, Any], *, key: bytes, base_url: str
) -> list[dict[str, Any]]:
    """A survey email's one-click links: ``{"score": N, "url": ...}`` for 0-10 (NPS) or 1-5
    (CSAT), signed for the context's invitation and expiring with it."""
    from tasks.mail.links import survey_answer_url

    expires_at = datetime.fromisoformat(context["expires_at"])
    low, high = (1, 5) if context["survey"] == "csat" else (0, 10)
    return [
        {
            "score": score,
            "url": survey_answer_url(
                int(context["invitation_id"]),
                key=key,
                base_url=base_url,
                expires_at=expires_at,
                score=score,
            ),
        }
        for score in range(low, high + 1)
    ]


# ---------------------------------------------------------------- in the worker process


def _exit_with_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])  # readable (end-of-file) once the parent has exited, however it died
        os._exit(0)  # no cleanup to do: nothing is written, the parent owns every outcome

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(company: str, default_base_url: str) -> None:
    """Runs once in each worker: pin what the parent's renderer takes from its settings (so
    both sides render identically), watch the parent, import the build code up front."""
    from tasks.mail import render

    render.pin_settings_defaults(company, default_base_url)
    _exit_with_parent()
    import tasks.mail.message  # noqa: F401


def _ready() -> bool:
    return True


def _build_chunk(
    jobs: Sequence[BuildJob],
    sender: str,
    base_url: str,
    date: datetime,
    key: bytes,
    hang_s: float,
) -> list[bytes | str]:
    faulthandler.dump_traceback_later(hang_s, exit=True, file=sys.stderr)
    try:
        return [build_one(j, sender=sender, base_url=base_url, date=date, key=key) for j in jobs]
    finally:
        faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------- in the delivering process


class BuildExecutor:
    """A ``ProcessPoolExecutor`` for chunks of builds, with the lifecycle delivery needs:
    ``ready`` once the workers have started, ``alive`` until one was lost (then the caller
    builds in-process), ``has_room`` to keep at most a few chunks queued."""

    def __init__(
        self,
        workers: int,
        *,
        company: str,
        default_base_url: str,
        hang_s: float = WORKER_HANG_S,
        chunk_timeout_s: float = CHUNK_TIMEOUT_S,
    ) -> None:
        self.workers = workers
        self.hang_s = hang_s
        self.chunk_timeout_s = chunk_timeout_s
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(company, default_base_url),
        )
        self._in_flight = 0
        self.alive = True
        # Starts every worker now (the executor spawns them on demand) and says when one is up.
        self._warm: list[Future[bool]] = [self._executor.submit(_ready) for _ in range(workers)]

    @property
    def ready(self) -> bool:
        if not self.alive:
            return False
        if any(f.done() and f.exception() is None for f in self._warm):
            return True
        if all(f.done() for f in self._warm):  # every worker failed to start
            self._lost(self._warm[0].exception() or BuildLost("no worker started"))
        return False

    @property
    def has_room(self) -> bool:
        return self.alive and self._in_flight < self.workers * MAX_IN_FLIGHT_PER_WORKER

    def submit(
        self, jobs: list[BuildJob], *, sender: str, base_url: str, date: datetime, key: bytes
    ) -> Coroutine[Any, Any, list[bytes | str]]:
        """Hand a chunk to the pool now (it counts against ``has_room`` at once); await the
        result for the chunk's messages in ``jobs`` order. ``BuildLost`` (raised here or by the
        await) if the workers are gone, died or hung; the executor is then shut down and
        ``alive`` is false."""
        if not self.alive:
            raise BuildLost("build workers are gone")
        try:
            future = self._executor.submit(
                _build_chunk, jobs, sender, base_url, date, key, self.hang_s
            )
        except (BrokenProcessPool, RuntimeError) as exc:
            # RuntimeError: submit after shutdown.
            self._lost(exc)
            raise BuildLost(exc.__class__.__name__) from exc
        self._in_flight += 1
        return self._result(future)

    async def _result(self, future: Future[list[bytes | str]]) -> list[bytes | str]:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.chunk_timeout_s)
        except (BrokenProcessPool, TimeoutError, CancelledError) as exc:
            # CancelledError (concurrent.futures'): cancelled by a shutdown after another loss.
            self._lost(exc)
            raise BuildLost(exc.__class__.__name__) from exc
        finally:
            self._in_flight -= 1

    def _lost(self, exc: BaseException) -> None:
        if self.alive:
            log.warning("outbox: build workers lost (%s)", exc.__class__.__name__)
        self.shutdown(wait=False)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop the workers; queued chunks are cancelled. ``wait=False`` when one may be stuck
        (its watchdog ends it within ``hang_s``)."""
        self.alive = False
        self._executor.shutdown(wait=wait, cancel_futures=True)
