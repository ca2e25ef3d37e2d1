"""A minimal, fast counting SMTP sink in its own process, for the delivery benchmark.

It writes no files: it counts messages and records each Message-ID, so the benchmark can check
that exactly N distinct messages arrived. Running it in a separate process keeps its CPU and
memory out of the measurements of the sending process (on a 2-core machine the two still share
the CPU; the ceiling measurement pays the same cost, so the ratio stays fair).

The parent drives it over a ``multiprocessing`` pipe: ``reset``, ``snapshot``, ``stop``.

``latency_ms``: the sink waits that long before each reply it sends (greeting, EHLO, MAIL,
RCPT, DATA's 354 and the final 250), as a relay across a network does: one round trip per
command, since aiosmtplib waits for each reply before the next command (no PIPELINING).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

# Message-ID header value, including folded continuation lines, within the header block.
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*((?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*)")


def message_id_of(raw: bytes) -> bytes | None:
    end = raw.find(b"\r\n\r\n")
    headers = raw if end < 0 else raw[:end]
    match = _MESSAGE_ID.search(headers)
    if match is None:
        return None
    return b"".join(match.group(1).split())


# Largest message the fast DATA path accepts in one read (the benchmark's are < 100 kB).
DATA_LIMIT = 32 * 1024 * 1024


class FastDataSMTP(SMTP):
    """aiosmtpd with the DATA phase read in one ``readuntil`` instead of line by line.

    Stock aiosmtpd awaits one ``readuntil(CRLF)`` per line (hundreds per HTML message), which
    made the sink, not the sender, the bottleneck of every measurement on this 2-core machine.
    Commands still go through aiosmtpd unchanged. Dot-unstuffing is skipped: the sink only reads
    the headers, and a header line never starts with a dot. Benchmark use only (it touches the
    StreamReader's private ``_limit``, which aiosmtpd sets to one line).
    """

    latency_s = 0.0

    async def push(self, status: Any) -> None:
        # The network's round trip, before each reply (see the module docstring).
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.envelope
        if arg or envelope is None or not envelope.rcpt_tos or self.session is None:
            await super().smtp_DATA(arg)  # aiosmtpd's own error replies
            return
        if not self.session.host_name:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        reader = self._reader
        line_limit = reader._limit  # type: ignore[attr-defined]
        reader._limit = DATA_LIMIT  # type: ignore[attr-defined]
        try:
            raw = await reader.readuntil(b"\r\n.\r\n")
        finally:
            reader._limit = line_limit  # type: ignore[attr-defined]
        envelope.original_content = envelope.content = raw[:-3]
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)


class CountingHandler:
    def __init__(self) -> None:
        self.messages = 0
        self.recipients = 0
        self.message_ids: list[bytes] = []
        self.without_id = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages += 1
        self.recipients += len(envelope.rcpt_tos)
        message_id = message_id_of(envelope.original_content or b"")
        if message_id is None:
            self.without_id += 1
        else:
            self.message_ids.append(message_id)
        return "250 OK"

    def reset(self) -> None:
        self.messages = self.recipients = self.without_id = 0
        self.message_ids = []


@dataclass(frozen=True)
class SinkSnapshot:
    messages: int
    recipients: int
    without_id: int
    message_ids: list[bytes]
    cpu_seconds: float  # the sink process's CPU time so far (user + system)

    @property
    def distinct_ids(self) -> int:
        return len(set(self.message_ids))


def _serve(conn: Connection, host: str, latency_ms: float) -> None:
    handler = CountingHandler()
    loop = asyncio.new_event_loop()

    def factory() -> SMTP:
        server = FastDataSMTP(handler, hostname="bench-sink", decode_data=False, loop=loop)
        server.latency_s = latency_ms / 1000
        return server

    server = loop.run_until_complete(loop.create_server(factory, host=host, port=0, backlog=512))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    conn.send(("ready", server.sockets[0].getsockname()[1]))

    async def in_loop(command: str) -> Any:
        # Reads and resets happen on the loop's own thread, between messages, never mid-update.
        if command == "reset":
            handler.reset()
            return "ok"
        return SinkSnapshot(
            handler.messages,
            handler.recipients,
            handler.without_id,
            list(handler.message_ids),
            time.process_time(),
        )

    while True:
        command = conn.recv()
        if command == "stop":
            break
        conn.send(asyncio.run_coroutine_threadsafe(in_loop(command), loop).result())
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    conn.send("stopped")


class SinkProcess:
    """``with SinkProcess() as sink:`` → ``sink.port``, ``sink.reset()``, ``sink.snapshot()``."""

    def __init__(self, host: str = "127.0.0.1", *, latency_ms: float = 0.0) -> None:
        self.host = host
        self.port = 0
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn, host, latency_ms), name="bench-smtp-sink", daemon=True
        )

    def start(self) -> None:
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("benchmark SMTP sink did not start within 60 s")
        tag, port = self._conn.recv()
        assert tag == "ready"
        self.port = int(port)

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def snapshot(self) -> SinkSnapshot:
        self._conn.send("snapshot")
        snapshot = self._conn.recv()
        assert isinstance(snapshot, SinkSnapshot)
        return snapshot

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._conn.poll(10) and self._conn.recv()
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def __enter__(self) -> SinkProcess:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
