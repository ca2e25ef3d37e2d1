"""Persistent aiosmtplib connections ("lanes") and the mapping of SMTP errors to ``SendFailure``.

One ``aiosmtplib.SMTP`` object sends one message at a time, so concurrency is a set of lanes, one
connection each (``smtp_concurrency``). A lane keeps its connection open across messages,
replaces it when it breaks, and never lets a send run past the total timeout.

TLS is always explicit: aiosmtplib's ``start_tls=None`` would silently fall back to plaintext
when the server does not offer STARTTLS, so we connect with ``start_tls=False`` and upgrade
ourselves, refusing to go on (``SmtpConfigurationError``) when STARTTLS is missing.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from crm_core.settings import Settings
from tasks.mail.classify import SendFailure, Stage

TlsMode = Literal["starttls", "implicit", "none"]


class SmtpConfigurationError(RuntimeError):
    """The relay cannot be used as configured (TLS missing, untrusted or not fitting the port,
    login refused, the client or its relaying refused). Rows are left pending for a fixed
    config. ``reason`` says which, for reports (``tls``, ``tls_mode``, ``no_starttls``,
    ``login``, ``refused``)."""

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to connect; built from ``Settings`` (the password stays out of reprs)."""

    host: str
    port: int
    tls: TlsMode
    username: str | None
    password: str | None
    timeout_s: float
    data_timeout_s: float
    ca_file: str | None
    envelope_from: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTarget:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_user,
            password=password,
            timeout_s=settings.smtp_timeout_s,
            data_timeout_s=settings.smtp_data_timeout_s,
            ca_file=settings.smtp_ca_file,
            envelope_from=parseaddr(settings.mail_from)[1],
        )

    def describe(self) -> str:
        return f"{self.host}:{self.port} (tls={self.tls})"

    def __repr__(self) -> str:
        return f"SmtpTarget({self.describe()}, auth={'set' if self.username else 'unset'})"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The server answered 250 to DATA; ``response`` is what it said (often a queue id)."""

    response: str


SendOutcome = Accepted | SendFailure

_local_hostname: str | None = None


async def local_hostname() -> str:
    """Our EHLO name, looked up once per process (``getfqdn`` can block on DNS)."""
    global _local_hostname
    if _local_hostname is None:
        _local_hostname = await asyncio.to_thread(socket.getfqdn) or "localhost"
    return _local_hostname


def _is_ascii(text: str) -> bool:
    return text.isascii()


# OpenSSL's reasons when the other side answers a TLS ClientHello in plaintext (a "220 ..."
# greeting): implicit TLS aimed at a plain or STARTTLS port.
_PLAINTEXT_REPLY = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")
IMPLICIT_TLS_PORT = 465


def _tls_failure(target: SmtpTarget, cause: ssl.SSLError) -> SmtpConfigurationError:
    reason = (getattr(cause, "reason", None) or "").upper()
    if target.tls == "implicit" and reason in _PLAINTEXT_REPLY:
        return SmtpConfigurationError(
            f"SMTP server {target.describe()} answered in plaintext: port {target.port} is not "
            "an implicit-TLS port. Set CRM_SMTP_TLS=starttls for it, or use the relay's "
            f"implicit-TLS port ({IMPLICIT_TLS_PORT}). Nothing was sent.",
            reason="tls_mode",
        )
    return SmtpConfigurationError(
        f"TLS with SMTP server {target.describe()} failed ({cause.__class__.__name__}"
        f"{': ' + reason.lower() if reason else ''}); is its certificate trusted "
        "(CRM_SMTP_CA_FILE)? Nothing was sent.",
        reason="tls",
    )


def _no_greeting(target: SmtpTarget, exc: BaseException) -> SendFailure:
    """A TCP connection but no greeting: a slow server, or a plaintext client on a port that
    waits for a TLS handshake first (465)."""
    hint = ""
    if target.tls != "implicit":
        hint = (
            f"; if port {target.port} is an implicit-TLS port (usually {IMPLICIT_TLS_PORT}), "
            "set CRM_SMTP_TLS=implicit"
        )
    return SendFailure(Stage.CONNECT, None, f"no SMTP greeting within {target.timeout_s:g} s{hint}")


def smtp_client(target: SmtpTarget, *, local_name: str) -> aiosmtplib.SMTP:
    """The one way an SMTP client is built (delivery and the healthcheck): the configured TLS
    mode, certificates checked against ``CRM_SMTP_CA_FILE`` (or the system CAs)."""
    return aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        timeout=target.timeout_s,
        local_hostname=local_name,
        use_tls=target.tls == "implicit",
        start_tls=False,  # never None: see the module docstring
        validate_certs=True,
        cert_bundle=target.ca_file,
    )


async def open_connection(
    target: SmtpTarget, *, authenticate: bool = True, local_name: str | None = None
) -> aiosmtplib.SMTP | SendFailure:
    """Connect, greet, secure (implicit TLS or STARTTLS) and, with ``authenticate``, log in.

    Returns the open client, or a CONNECT failure when the server cannot be reached or turns
    us away (transient); raises ``SmtpConfigurationError`` when it is reachable but unusable
    as configured (no STARTTLS, TLS failing or not fitting the port, login refused).
    """
    smtp = smtp_client(target, local_name=local_name or await local_hostname())
    greeted = False
    try:
        async with asyncio.timeout(target.timeout_s):
            await smtp.connect()
            greeted = True
            if target.tls == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    raise SmtpConfigurationError(
                        f"SMTP server {target.describe()} does not offer STARTTLS; refusing "
                        "to send in plaintext. Nothing was sent. Fix the relay, or set "
                        "CRM_SMTP_TLS=implicit (or 'none' for a local capture server only).",
                        reason="no_starttls",
                    )
                await smtp.starttls()
            if authenticate and target.username is not None:
                await smtp.login(target.username, target.password or "")
    except SmtpConfigurationError:
        smtp.close()
        raise
    except SMTPAuthenticationError as exc:
        smtp.close()
        raise SmtpConfigurationError(
            f"SMTP server {target.describe()} refused our login ({exc.code} {exc.message}); "
            "check CRM_SMTP_USER / CRM_SMTP_PASSWORD. Nothing was sent.",
            reason="login",
        ) from None
    except (SMTPConnectTimeoutError, TimeoutError) as exc:
        smtp.close()
        if not greeted:
            return _no_greeting(target, exc)
        return SendFailure(Stage.CONNECT, None, f"no answer within {target.timeout_s:g} s")
    except (ssl.SSLError, SMTPConnectError) as exc:
        smtp.close()
        cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
        if isinstance(cause, ssl.SSLError):
            raise _tls_failure(target, cause) from None
        code = exc.code if isinstance(exc, SMTPConnectResponseError) else None
        return SendFailure(Stage.CONNECT, code, str(exc))
    except SMTPHeloError as exc:
        smtp.close()
        return SendFailure(Stage.CONNECT, exc.code, exc.message)
    except SMTPResponseException as exc:
        smtp.close()
        return SendFailure(Stage.CONNECT, exc.code, exc.message)
    except (SMTPException, OSError) as exc:
        smtp.close()
        return SendFailure(Stage.CONNECT, None, str(exc) or exc.__class__.__name__)
    return smtp


class SmtpLane:
    """One persistent SMTP connection, used by one sender coroutine at a time."""

    def __init__(self, target: SmtpTarget) -> None:
        self._target = target
        self._smtp: aiosmtplib.SMTP | None = None

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    @property
    def client(self) -> aiosmtplib.SMTP | None:
        return self._smtp

    async def connect(self, *, authenticate: bool = True) -> SendFailure | None:
        """Open, secure and authenticate a connection (``open_connection``). Returns a CONNECT
        failure when the server cannot be reached or turns us away (transient); raises
        ``SmtpConfigurationError`` when it is reachable but unusable as configured."""
        self.close()
        opened = await open_connection(self._target, authenticate=authenticate)
        if isinstance(opened, SendFailure):
            return opened
        self._smtp = opened
        return None

    async def send(
        self,
        recipient: str,
        data: bytes,
        *,
        before_data: Callable[[], Awaitable[bool]] | None = None,
    ) -> SendOutcome:
        """Send one message (``data`` is the serialised message, CRLF line endings).

        Reconnecting, MAIL and RCPT share the total timeout ``smtp_timeout_s``; DATA then has
        ``smtp_data_timeout_s`` for its reply (RFC 5321 4.5.3.2.6). No reply within that is an
        unknown outcome (``Stage.UNKNOWN``): the server may have stored the message.

        ``before_data`` is awaited after RCPT, before DATA (outside both timeouts): the server
        cannot accept the message before it returns. False means do not send it: the
        transaction is reset and the outcome is a CONNECT failure (nothing attempted).
        """
        target = self._target
        try:
            async with asyncio.timeout(target.timeout_s):
                if not self.connected:
                    failure = await self.connect()
                    if failure is not None:
                        return failure
                assert self._smtp is not None
                smtp = self._smtp
                options = [] if _is_ascii(recipient) else ["SMTPUTF8"]
                await smtp.mail(target.envelope_from, options=options)
                try:
                    await smtp.rcpt(recipient)
                except SMTPResponseException:
                    await self._reset()
                    raise
            if before_data is not None and not await before_data():
                await self._reset()
                return SendFailure(Stage.CONNECT, None, "not sent: stopped before DATA")
            try:
                async with asyncio.timeout(target.timeout_s + target.data_timeout_s):
                    reply = await smtp.data(data, timeout=target.data_timeout_s)
            except (TimeoutError, SMTPTimeoutError):
                self.close()
                return SendFailure(
                    Stage.UNKNOWN, None, f"no reply to DATA within {target.data_timeout_s:g} s"
                )
            response = reply.message
            refused: dict[str, SMTPResponse] = {}
        except TimeoutError:
            # Whatever the server is doing, the connection is now out of step: drop it.
            self.close()
            return SendFailure(Stage.TIMEOUT, None, f"no answer within {target.timeout_s:g} s")
        except SMTPRecipientsRefused as exc:
            # All recipients refused (for us, the only one). Not an SMTPResponseException.
            first = exc.recipients[0] if exc.recipients else None
            if first is None:
                return SendFailure(Stage.RECIPIENT, None, "recipient refused")
            return SendFailure(Stage.RECIPIENT, first.code, first.message)
        except SMTPRecipientRefused as exc:
            return SendFailure(Stage.RECIPIENT, exc.code, exc.message)
        except SMTPSenderRefused as exc:
            # A 530 (auth or STARTTLS required) is judged by ``classify.client_refusal``.
            return SendFailure(Stage.SENDER, exc.code, exc.message)
        except SMTPDataError as exc:
            return SendFailure(Stage.DATA, exc.code, exc.message)
        except SMTPResponseException as exc:
            if exc.code == 421:
                self.close()  # "service closing": the server is hanging up on us
            return SendFailure(Stage.PROTOCOL, exc.code, exc.message)
        except (SMTPServerDisconnected, SMTPTimeoutError, ConnectionError, OSError) as exc:
            self.close()
            return SendFailure(Stage.DISCONNECT, None, str(exc) or exc.__class__.__name__)
        except SMTPNotSupported as exc:
            return SendFailure(Stage.UNSUPPORTED, None, exc.message)
        except ValueError as exc:
            # aiosmtplib refuses an address it cannot put on the wire safely.
            return SendFailure(Stage.UNSUPPORTED, None, str(exc))
        except SMTPException as exc:
            self.close()
            return SendFailure(Stage.PROTOCOL, None, exc.message)
        # Partial refusals do not raise: inspect the per-recipient result.
        mine = refused.get(recipient)
        if mine is None and refused:
            mine = next(iter(refused.values()))
        if mine is not None:
            return SendFailure(Stage.RECIPIENT, mine.code, mine.message)
        return Accepted(response)

    async def _reset(self) -> None:
        """RSET after a refused recipient, so the connection can carry the next message."""
        if self._smtp is None:
            return
        try:
            await self._smtp.rset()
        except (SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def quit(self) -> None:
        """Polite goodbye at the end of a run; errors here change nothing."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.is_connected:
                await smtp.quit(timeout=min(self._target.timeout_s, 5.0))
        except (SMTPException, OSError, TimeoutError):
            pass
        finally:
            smtp.close()
