"""Real SMTP servers for tests: aiosmtpd on 127.0.0.1 with a recording sink and injectable faults.

``SmtpServer`` runs an aiosmtpd ``Controller`` (its own thread and event loop) on a free port.
Its handler, ``FaultySink``, records every accepted message (Message-ID and envelope recipients)
and can misbehave on purpose:

* ``greeting_replies``: replies (e.g. ``"421 busy"``) sent instead of the 220 greeting to the
  next connections, which are then closed;
* ``rcpt_replies``: a fixed reply per recipient address (``{"x@y.test": "550 5.1.1 unknown"}``);
* ``data_replies``: replies to the next DATA commands, in order (``["451 later"] * 3``); the
  message is not recorded when the reply is not 250;
* ``drop_data``: the next N DATA commands get no reply at all: the connection is cut after the
  message arrived (recorded or not, per ``drop_records``);
* ``data_delay_s``: a slow server, waiting before answering DATA (the message is recorded after
  the wait: a client that gives up in between has still "sent" it, as with real servers);
* ``rcpt_delay_s``: a server slow to accept recipients: it slows the rate without widening the
  window in which an accepted message's sender can die before hearing the 250;
* TLS: ``tls_context`` offers STARTTLS; ``implicit_tls_context`` makes the port implicit TLS.

Everything is counted under a lock, since tests read from their own thread. Factories are plain
functions; reuse them from any test that needs a mail server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
SERVER_NAME = "test-smtp"  # fixed, so aiosmtpd does no FQDN lookup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message_id_of(data: bytes) -> str | None:
    header_end = data.find(b"\r\n\r\n")
    headers = data if header_end < 0 else data[:header_end]
    match = _MESSAGE_ID.search(headers)
    return match.group(1).decode() if match else None


@dataclass
class Received:
    message_id: str | None
    recipients: list[str]
    data: bytes | None  # kept only when the sink is asked to keep bodies
    # time.monotonic() (system-wide on Linux, so comparable with other processes' readings)
    # just before the 250 goes out: the ledger of acceptances the crash tests compare with kills.
    accepted_at: float = 0.0
    # When the client's connection that carried it was opened (same clock): tells which of a
    # series of sending processes sent it.
    connected_at: float = 0.0


@dataclass
class FaultySink:
    """aiosmtpd handler: records what it accepts, misbehaves as configured (see module doc)."""

    keep_data: bool = True
    greeting_replies: list[str] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    drop_data: int = 0
    drop_records: bool = False
    data_delay_s: float = 0.0
    rcpt_delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    # Every DATA body that arrived, accepted or not (kept only with ``keep_data``).
    data_seen: list[bytes] = field(default_factory=list)
    connections: int = 0
    data_commands: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Open time of each client connection, by its peer address (host, port).
    connection_times: dict[Any, float] = field(default_factory=dict)
    # Set when a client connects / when a message is accepted: tests wait on these (with a
    # timeout) instead of sleeping. Clear one before the step whose effect it should show.
    connected: threading.Event = field(default_factory=threading.Event)
    accepted: threading.Event = field(default_factory=threading.Event)

    # -- aiosmtpd hooks -----------------------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_delay_s:
            await asyncio.sleep(self.rcpt_delay_s)
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not data:
            data = envelope.content
        with self.lock:
            self.data_commands += 1
            if self.keep_data:
                self.data_seen.append(data)
            reply = self.data_replies.pop(0) if self.data_replies else None
            drop = self.drop_data > 0
            if drop:
                self.drop_data -= 1
        if self.data_delay_s:
            await asyncio.sleep(self.data_delay_s)
        if drop:
            if self.drop_records:
                self._record(envelope, data, session)
            transport = server.transport
            assert isinstance(transport, asyncio.Transport)
            transport.abort()  # no reply: the client sees the connection die mid-DATA
            return "250 never sent"
        if reply is not None and not reply.startswith("250"):
            return reply
        # Recorded as late as possible, just before the 250: a crash of the sender can then
        # only duplicate messages the server really accepted.
        count = self._record(envelope, data, session)
        return reply or f"250 OK queued as {count}"

    # -- helpers --------------------------------------------------------------------------------

    def _record(self, envelope: Envelope, data: bytes, session: Session) -> int:
        item = Received(
            message_id=message_id_of(data),
            recipients=list(envelope.rcpt_tos),
            data=data if self.keep_data else None,
        )
        with self.lock:
            item.accepted_at = time.monotonic()
            item.connected_at = self.connection_times.get(session.peer, 0.0)
            self.received.append(item)
            count = len(self.received)
        self.accepted.set()
        return count

    def next_greeting(self, peer: Any = None) -> str | None:
        with self.lock:
            self.connections += 1
            if peer is not None:
                self.connection_times[peer] = time.monotonic()
            reply = self.greeting_replies.pop(0) if self.greeting_replies else None
        self.connected.set()
        return reply

    def message_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id for r in self.received if r.message_id is not None]

    def duplicates(self) -> int:
        counts = Counter(self.message_ids())
        return sum(n - 1 for n in counts.values() if n > 1)


class _FaultySMTP(SMTP):
    """aiosmtpd's server with an optional refusal in place of the greeting."""

    async def _handle_client(self) -> None:
        handler = self.event_handler
        peer = self.session.peer if self.session is not None else None
        reply = handler.next_greeting(peer) if isinstance(handler, FaultySink) else None
        if reply is not None:
            await self.push(reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _FaultySMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # The base class opens a connection to make aiosmtpd build its server object; that
        # connection would use up a scripted greeting reply, so it must not count.
        handler = self.handler
        if isinstance(handler, FaultySink):
            with handler.lock:
                saved = list(handler.greeting_replies)
                handler.greeting_replies.clear()
            try:
                super()._trigger_server()  # type: ignore[no-untyped-call]
            finally:
                with handler.lock:
                    handler.greeting_replies[:0] = saved
                    handler.connections = 0
        else:
            super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class SmtpServer:
    sink: FaultySink
    host: str
    port: int
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()


def password_checker(user: str, password: str) -> Any:
    """An aiosmtpd authenticator accepting exactly ``user``/``password`` (LOGIN or PLAIN)."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (user, password)
        # handled=False: aiosmtpd then answers 535 itself (True would leave the client waiting).
        return AuthResult(success=ok, handled=False)

    return authenticate


def start_server(
    sink: FaultySink | None = None,
    *,
    port: int | None = None,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls_context: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
    auth_required_without_tls: bool = False,
    plaintext_authenticator: Any = None,
) -> SmtpServer:
    """``login``: require AUTH with these credentials (over TLS, as real relays do);
    ``auth_required_without_tls``: require AUTH but never offer it (MAIL gets a 530);
    ``plaintext_authenticator``: require AUTH, offered without TLS, judged by this callable."""
    sink = sink or FaultySink()
    port = port or free_port()
    kwargs: dict[str, Any] = {
        "server_hostname": SERVER_NAME,
        "data_size_limit": 50 * 1024 * 1024,
    }
    if tls_context is not None:
        kwargs["tls_context"] = tls_context
        kwargs["require_starttls"] = True
    if login is not None:
        kwargs["authenticator"] = password_checker(*login)
        kwargs["auth_required"] = True
    if plaintext_authenticator is not None:
        kwargs.update(
            authenticator=plaintext_authenticator, auth_required=True, auth_require_tls=False
        )
    if auth_required_without_tls:
        kwargs["auth_required"] = True  # with auth_require_tls left on and no TLS: no AUTH
    controller = _Controller(
        sink, hostname="127.0.0.1", port=port, ssl_context=implicit_tls_context, **kwargs
    )
    controller.start()
    return SmtpServer(sink=sink, host="127.0.0.1", port=port, controller=controller)


@contextmanager
def running_server(sink: FaultySink | None = None, **options: Any) -> Iterator[SmtpServer]:
    """``start_server`` as a context manager (same options); stops the server at the end."""
    server = start_server(sink, **options)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class TestCertificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificate(directory: Path, hostname: str = "127.0.0.1") -> TestCertificate:
    """A self-signed certificate for ``hostname`` (an IP address or a DNS name), for TLS tests;
    clients trust it by using ``cert_file`` as their CA bundle."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        san = x509.DNSName(hostname)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "smtp-cert.pem"
    key_file = directory / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TestCertificate(cert_file=cert_file, key_file=key_file)
