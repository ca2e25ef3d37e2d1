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
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
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

# 530 on MAIL FROM means "authenticate first": a configuration problem shared by every message.
AUTH_REQUIRED = 530


class SmtpConfigurationError(RuntimeError):
    """The relay cannot be used as configured (TLS missing or untrusted, authentication refused).

    Raised before anything is sent on the connection; rows are left pending for a fixed config.
    """


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


class SmtpLane:
    """One persistent SMTP connection, used by one sender coroutine at a time."""

    def __init__(self, target: SmtpTarget) -> None:
        self._target = target
        self._smtp: aiosmtplib.SMTP | None = None

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.is_connected

    async def connect(self) -> SendFailure | None:
        """Open, secure and authenticate a connection. Returns a CONNECT failure when the
        server cannot be reached or turns us away (transient); raises
        ``SmtpConfigurationError`` when it is reachable but unusable as configured."""
        self.close()
        target = self._target
        smtp = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            timeout=target.timeout_s,
            local_hostname=await local_hostname(),
            use_tls=target.tls == "implicit",
            start_tls=False,  # never None: see the module docstring
            validate_certs=True,
            cert_bundle=target.ca_file,
        )
        try:
            async with asyncio.timeout(target.timeout_s):
                await smtp.connect()
                if target.tls == "starttls":
                    await smtp.ehlo()
                    if not smtp.supports_extension("starttls"):
                        raise SmtpConfigurationError(
                            f"SMTP server {target.describe()} does not offer STARTTLS; refusing "
                            "to send in plaintext. Nothing was sent. Fix the relay, or set "
                            "CRM_SMTP_TLS=implicit (or 'none' for a local capture server only)."
                        )
                    await smtp.starttls()
                if target.username is not None:
                    await smtp.login(target.username, target.password or "")
        except SmtpConfigurationError:
            smtp.close()
            raise
        except SMTPAuthenticationError as exc:
            smtp.close()
            raise SmtpConfigurationError(
                f"SMTP server {target.describe()} refused our login ({exc.code}); check "
                "CRM_SMTP_USER / CRM_SMTP_PASSWORD. Nothing was sent."
            ) from exc
        except (ssl.SSLError, SMTPConnectError) as exc:
            smtp.close()
            cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
            if isinstance(cause, ssl.SSLError):
                raise SmtpConfigurationError(
                    f"TLS with SMTP server {target.describe()} failed ({cause.__class__.__name__})"
                    "; is its certificate trusted (CRM_SMTP_CA_FILE)? Nothing was sent."
                ) from exc
            code = exc.code if isinstance(exc, SMTPConnectResponseError) else None
            return SendFailure(Stage.CONNECT, code, str(exc))
        except SMTPHeloError as exc:
            smtp.close()
            return SendFailure(Stage.CONNECT, exc.code, exc.message)
        except SMTPResponseException as exc:
            smtp.close()
            return SendFailure(Stage.CONNECT, exc.code, exc.message)
        except (SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            return SendFailure(Stage.CONNECT, None, str(exc) or exc.__class__.__name__)
        self._smtp = smtp
        return None

    async def send(self, recipient: str, data: bytes) -> SendOutcome:
        """Send one message (``data`` is the serialised message, CRLF line endings).

        Reconnecting, MAIL and RCPT share the total timeout ``smtp_timeout_s``; DATA then has
        ``smtp_data_timeout_s`` for its reply (RFC 5321 4.5.3.2.6). No reply within that is an
        unknown outcome (``Stage.UNKNOWN``): the server may have stored the message.
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
            if exc.code == AUTH_REQUIRED:
                raise SmtpConfigurationError(
                    f"SMTP server {target.describe()} requires authentication ({exc.code}); "
                    "set CRM_SMTP_USER / CRM_SMTP_PASSWORD."
                ) from exc
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
