"""aiosmtpd handlers that refuse the client exactly as Postfix 3.7 does (codes and texts as
its smtpd writes them), for the relay-refusal tests. Plain subclasses of ``FaultySink``, so
they record what they accept and take every other fault of ``tests.support.smtp_servers``.

* ``client_rejected``: ``smtpd_client_restrictions = reject`` style, refused at each RCPT:
  ``554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied``;
* ``relay_deferred``: ``defer_unauth_destination`` (or ``soft_bounce``): ``454 4.7.1 <rcpt>:
  Relay access denied``; ``relay_denied``: the default ``reject_unauth_destination``, 554 5.7.1;
* ``starttls_first``: ``smtpd_tls_security_level = encrypt`` without TLS, at MAIL FROM:
  ``530 5.7.0 Must issue a STARTTLS command first``;
* ``POSTFIX_AUTH_FAILED``: what a failed SASL login gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.support.smtp_servers import FaultySink

CLIENT_REJECTED = "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
POSTFIX_AUTH_FAILED = "535 5.7.8 Error: authentication failed: authentication failure"


def relay_reply(code: str, address: str) -> str:
    """Postfix's relay refusal for one recipient: ``454 4.7.1`` (deferred) or ``554 5.7.1``."""
    enhanced = "4.7.1" if code.startswith("4") else "5.7.1"
    return f"{code} {enhanced} <{address}>: Relay access denied"


@dataclass
class PostfixRefusal(FaultySink):
    """Refuses every MAIL FROM (``mail_reply``) or every RCPT (``rcpt_reply``, with ``{rcpt}``
    replaced by the address); everything else as ``FaultySink``."""

    mail_reply: str | None = None
    rcpt_reply: str | None = None
    mail_commands: int = 0
    rcpt_commands: int = 0

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self.lock:
            self.mail_commands += 1
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self.lock:
            self.rcpt_commands += 1
        if self.rcpt_reply is not None:
            return self.rcpt_reply.replace("{rcpt}", address)
        return await super().handle_RCPT(server, session, envelope, address, options)


def client_rejected() -> PostfixRefusal:
    return PostfixRefusal(rcpt_reply=CLIENT_REJECTED)


def relay_deferred() -> PostfixRefusal:
    return PostfixRefusal(rcpt_reply=relay_reply("454", "{rcpt}"))


def relay_denied() -> PostfixRefusal:
    return PostfixRefusal(rcpt_reply=relay_reply("554", "{rcpt}"))


def starttls_first() -> PostfixRefusal:
    return PostfixRefusal(mail_reply=STARTTLS_FIRST)


def postfix_password_checker(user: str, password: str) -> Any:
    """An aiosmtpd authenticator that answers a wrong login as Postfix does (535 5.7.8)."""

    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = getattr(auth_data, "login", b"").decode()
        given = getattr(auth_data, "password", b"").decode()
        if (login, given) == (user, password):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False, message=POSTFIX_AUTH_FAILED)

    return authenticate


# ``smtpd_recipient_restrictions = ..., reject`` (or a catch-all ``check_recipient_access``):
# every recipient refused with the same policy reply, which names only the recipient.
RECIPIENT_ACCESS_DENIED = "554 5.7.1 <{rcpt}>: Recipient address rejected: Access denied"
UNKNOWN_USER = (
    "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
)


def recipient_access_denied() -> PostfixRefusal:
    return PostfixRefusal(rcpt_reply=RECIPIENT_ACCESS_DENIED)
