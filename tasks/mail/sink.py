"""Local mail capture: an SMTP server on 127.0.0.1 that keeps every message it receives as files.

For development and ``make demo`` only: plain SMTP, no authentication, loopback addresses only.
Each message is written byte for byte to ``<dir>/<stem>.eml``; its HTML part, if any, to
``<dir>/<stem>.html`` (with a Content-Security-Policy that blocks scripts and remote loads, so
opening a captured message cannot run its code or fetch tracking pixels); and one row per message
is appended to ``<dir>/index.html``. Stems come from the arrival time and a counter, never from a
header, so they sort by arrival and cannot escape the directory.

The index is append-only: one ``write`` per message, so capturing 100k messages stays linear. The
browser tolerates the table never being closed. If ``index.html`` is missing while ``.eml`` files
exist (someone deleted it), it is rebuilt once at start-up from those files.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import IO, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

INDEX_NAME = "index.html"
SERVER_HOSTNAME = (
    "crm-mail-sink"  # fixed: aiosmtpd would otherwise do a (slow, offline) FQDN lookup
)

# Captured HTML is third-party content: no scripts, no remote images/fonts/frames, inline CSS only.
_PREVIEW_CSP = (
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; form-action 'none'"
)
_INDEX_CSP = "default-src 'none'; style-src 'unsafe-inline'"

_INDEX_HEAD = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_INDEX_CSP}">
<meta name="referrer" content="no-referrer">
<title>crm mail-sink: captured mail</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left;
  vertical-align: top; font-size: .9rem; }}
th {{ background: #f4f4f4; position: sticky; top: 0; }}
td.files a {{ margin-right: .5rem; }}
</style>
</head>
<body>
<h1>Captured mail</h1>
<p>Messages received by <code>crm mail-sink</code>, oldest first (new messages are added at the
bottom; reload to see them). Previews open with scripts and remote content blocked.</p>
<table>
<thead><tr><th>#</th><th>Received (UTC)</th><th>Date</th><th>From</th><th>To</th>
<th>Subject</th><th>Files</th></tr></thead>
<tbody>
"""


class NotLoopbackError(ValueError):
    """The capture server has no authentication and no TLS: it must not listen beyond loopback."""


def require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopbackError(
            f"mail-sink listens on loopback addresses only (127.0.0.1, ::1), not {host!r}"
        )


@dataclass(frozen=True)
class CapturedMessage:
    """What the index shows about one stored message (headers decoded, not yet escaped)."""

    number: int
    stem: str
    received_at: datetime
    date: str
    sender: str
    to: str
    subject: str
    has_html: bool


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header must not lose the message; show it as unreadable
        return "(unreadable header)"
    return "" if value is None else str(value)


def _html_part(message: EmailMessage) -> str | None:
    try:
        part = message.get_body(preferencelist=("html",))
        if part is None:
            return None
        content = part.get_content()
    except Exception:  # undecodable payloads still leave the .eml for inspection
        return None
    return content if isinstance(content, str) else None


_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)


def preview_document(body_html: str) -> str:
    """The HTML part as a standalone file whose CSP applies to everything that follows.

    A ``<meta>`` before ``<html>`` ends up in the implied ``<head>``, so browsers honour it even
    though the message brings its own head; the charset matches how the file is written. A
    leading doctype stays first (after our tags it would be ignored: quirks mode).
    """
    doctype = _DOCTYPE.match(body_html)
    prefix = doctype.group(0) + "\n" if doctype else ""
    rest = body_html[doctype.end() :] if doctype else body_html
    return (
        prefix + '<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_PREVIEW_CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        "<!-- captured by crm mail-sink -->\n" + rest
    )


def index_row(item: CapturedMessage) -> str:
    e = html.escape
    stem = e(item.stem, quote=True)
    links = f'<a href="{stem}.eml">eml</a>'
    if item.has_html:
        links = (
            f'<a href="{stem}.html" target="_blank" rel="noopener noreferrer">preview</a> ' + links
        )
    return (
        f"<tr><td>{item.number}</td><td>{e(item.received_at.strftime('%Y-%m-%d %H:%M:%S'))}</td>"
        f"<td>{e(item.date)}</td><td>{e(item.sender)}</td><td>{e(item.to)}</td>"
        f'<td>{e(item.subject)}</td><td class="files">{links}</td></tr>\n'
    )


class CaptureStore:
    """Writes captured messages and the index under one directory. Not thread-safe: the SMTP
    server calls it from its single event loop, which serialises messages."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._parser = BytesParser(policy=policy.default)
        self._last_stem = ""
        self._count = 0
        index_path = directory / INDEX_NAME
        existing = sorted(directory.glob("*.eml"))
        if existing:
            self._last_stem = existing[-1].stem
        if index_path.exists() and index_path.stat().st_size > 0:
            self._count = len(existing)
            self._index: IO[str] = index_path.open("a", encoding="utf-8")
        else:
            self._index = index_path.open("w", encoding="utf-8")
            self._index.write(_INDEX_HEAD)
            self._rebuild(existing)
            self._index.flush()

    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_NAME

    def _rebuild(self, paths: Iterable[Path]) -> None:
        for path in paths:
            raw = path.read_bytes()
            received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            self._count += 1
            item = self._describe(self._parse(raw), path.stem, received, [])
            has_html = (self.directory / f"{path.stem}.html").exists()
            self._index.write(index_row(replace(item, has_html=has_html)))

    def _next_stem(self, received_at: datetime) -> str:
        # Arrival order = name order: a UTC timestamp (µs) plus a counter that only breaks ties
        # when the clock does not advance (or goes back) between two messages.
        base = received_at.astimezone(UTC).strftime("%Y%m%d-%H%M%S-%f")
        stem = f"{base}-000000"
        if stem <= self._last_stem:
            last_base, _, last_seq = self._last_stem.rpartition("-")
            stem = f"{last_base}-{int(last_seq) + 1:06d}"
        self._last_stem = stem
        return stem

    def _parse(self, raw: bytes) -> EmailMessage | None:
        try:
            message = self._parser.parsebytes(raw)
        except Exception:  # a capture tool keeps whatever arrives, parseable or not
            return None
        return message if isinstance(message, EmailMessage) else None

    def _describe(
        self, message: EmailMessage | None, stem: str, received_at: datetime, rcpt_tos: list[str]
    ) -> CapturedMessage:
        envelope_to = ", ".join(rcpt_tos)
        if message is None:
            return CapturedMessage(
                self._count, stem, received_at, "", "", envelope_to, "(unparseable)", False
            )
        return CapturedMessage(
            number=self._count,
            stem=stem,
            received_at=received_at,
            date=_header(message, "Date"),
            sender=_header(message, "From"),
            to=_header(message, "To") or envelope_to,
            subject=_header(message, "Subject"),
            has_html=False,
        )

    def save(self, raw: bytes, *, rcpt_tos: list[str], received_at: datetime) -> CapturedMessage:
        """Store one message exactly as received, its HTML preview, and its index row."""
        stem = self._next_stem(received_at)
        eml = self.directory / f"{stem}.eml"
        tmp = self.directory / f".{stem}.eml.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, eml)  # readers never see a half-written .eml
        self._count += 1
        message = self._parse(raw)
        item = self._describe(message, stem, received_at, rcpt_tos)
        body_html = None if message is None else _html_part(message)
        if body_html is not None:
            (self.directory / f"{stem}.html").write_text(
                preview_document(body_html), encoding="utf-8"
            )
            item = replace(item, has_html=True)
        self._index.write(index_row(item))
        self._index.flush()
        return item

    @property
    def count(self) -> int:
        return self._count

    def close(self) -> None:
        self._index.close()


class CaptureHandler:
    """aiosmtpd handler: accept every message and hand its raw bytes to the store."""

    def __init__(self, store: CaptureStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.store.save(raw, rcpt_tos=list(envelope.rcpt_tos), received_at=self.clock())
        return "250 Message captured"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MailSink:
    """The capture server on its own thread and event loop (``with MailSink(dir) as sink:``).

    ``port=0`` picks a free port; ``sink.port`` is the one bound.
    """

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8025,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        require_loopback(host)
        self.directory = directory
        self.host = host
        self.port = port
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._store: CaptureStore | None = None

    @property
    def store(self) -> CaptureStore:
        if self._store is None:
            raise RuntimeError("mail sink is not running")
        return self._store

    def start(self) -> None:
        self._store = CaptureStore(self.directory)
        handler = CaptureHandler(self._store, self._clock)
        loop = asyncio.new_event_loop()

        def factory() -> SMTP:
            return SMTP(
                handler,
                hostname=SERVER_HOSTNAME,
                enable_SMTPUTF8=True,
                decode_data=False,
                loop=loop,
            )

        try:
            self._server = loop.run_until_complete(
                loop.create_server(factory, host=self.host, port=self.port)
            )
        except BaseException:
            loop.close()
            self._store.close()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="mail-sink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        loop, server, thread = self._loop, self._server, self._thread
        if loop is None or server is None or thread is None:
            return

        async def shutdown() -> None:
            server.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self.store.close()
        self._loop = self._server = self._thread = None

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
