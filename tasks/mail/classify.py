"""What to do with an outbox row (suppress it? after a failed send, retry or give up?): pure
rules, no SMTP or database imports.

The transport (``smtp_pool``) reduces whatever happened on the wire to a ``SendFailure`` (the stage
and the reply code, if any); these rules turn that into a decision. Time and randomness come in
as arguments so backoff is testable with explicit values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class Stage(StrEnum):
    """Where a send went wrong."""

    CONNECT = "connect"  # could not open or greet or secure a connection: nothing was attempted
    SENDER = "sender"  # MAIL FROM refused: our envelope, not this recipient's fault
    RECIPIENT = "recipient"  # RCPT TO refused for this row's recipient
    DATA = "data"  # the message body was refused
    DISCONNECT = "disconnect"  # the connection broke during the transaction
    TIMEOUT = "timeout"  # no answer before the end of DATA within the command timeout
    UNKNOWN = "unknown"  # the data went out, its reply never came: the server may have it
    PROTOCOL = "protocol"  # any other SMTP error
    UNSUPPORTED = "unsupported"  # this message cannot be sent by this server at all (SMTPUTF8)


@dataclass(frozen=True, slots=True)
class SendFailure:
    stage: Stage
    code: int | None
    message: str

    def describe(self) -> str:
        """Short text for ``last_error``/``smtp_response`` (may hold addresses: mask to log)."""
        code = f"{self.code} " if self.code is not None else ""
        return f"{self.stage}: {code}{self.message}"[:500]


class Disposition(StrEnum):
    RETRY = "retry"  # back to pending with a later next_attempt_at
    FAILED = "failed"  # permanent: not retried
    RELEASE = "release"  # never attempted: back to pending as it was, the attempt not counted
    # The relay refuses us, not this message: released as never attempted, no address flagged,
    # and the run stops and fails (every other message would get the same answer).
    CONFIGURATION = "configuration"
    UNKNOWN = "unknown"  # outcome unknown: one more try, after a long delay


@dataclass(frozen=True, slots=True)
class Decision:
    disposition: Disposition
    flag_recipient: bool = False  # mark the address undeliverable (customers/staff)


def suppression_reason(
    *,
    audience: str,
    consent_flag: str | None,
    unsubscribed: bool,
    marketing_opt_out: bool,
    survey_opt_out: bool,
) -> str | None:
    """Why customer mail must not be sent now (checked at send time, not when queued), or None.

    Unsubscribing stops all customer mail; an opt-out stops the kinds that need that consent.
    Staff mail is work mail and is never suppressed by customer consent.
    """
    if audience != "customer":
        return None
    if unsubscribed:
        return "customer unsubscribed"
    if consent_flag == "marketing" and marketing_opt_out:
        return "customer opted out of marketing mail"
    if consent_flag == "survey" and survey_opt_out:
        return "customer opted out of surveys"
    return None


# What relays say when they refuse the client or its relaying, not a recipient: Postfix
# ("Client host rejected", "Relay access denied", "Must issue a STARTTLS command first"),
# Sendmail ("Relaying denied"), Exchange ("Unable to relay", "Client not authenticated").
_CLIENT_REFUSAL = re.compile(
    r"client host rejected|relay access denied|relaying denied|unable to relay"
    r"|relay not permitted|not authenticated|authentication required"
    r"|must issue a starttls|starttls command first",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# 530: "authentication required" or "must issue STARTTLS first" (RFC 4954 / RFC 3207).
AUTH_OR_TLS_REQUIRED = 530


def enhanced_code(message: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code at the start of a reply text (``5.7.1``), if any."""
    match = _ENHANCED.match(message)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def client_refusal(failure: SendFailure) -> str | None:
    """Why the relay refuses the client (or its relaying) rather than this message, or None.

    Such a refusal is a configuration error: the same answer awaits every message. Counted:
    a 530 anywhere; the markers above in a reply to MAIL or RCPT (4xx as well as 5xx, Postfix
    defers relaying with ``454 4.7.1``); any 5.7.x (security/policy) reply to MAIL FROM. A bare
    5.7.x to one RCPT may be that recipient's policy: it fails the row, flags nothing.
    """
    if failure.code == AUTH_OR_TLS_REQUIRED:
        if "starttls" in failure.message.lower():
            return "the relay requires STARTTLS first (set CRM_SMTP_TLS=starttls)"
        return "the relay requires authentication (set CRM_SMTP_USER / CRM_SMTP_PASSWORD)"
    if failure.stage not in (Stage.SENDER, Stage.RECIPIENT) or failure.code is None:
        return None
    if _CLIENT_REFUSAL.search(failure.message):
        if "relay" in failure.message.lower():
            return "the relay refuses to relay for us (authenticate, or allow this host)"
        return "the relay refuses this client host (authenticate, or allow this host)"
    enhanced = enhanced_code(failure.message)
    if failure.stage is Stage.SENDER and enhanced is not None and enhanced[:2] == (5, 7):
        return "the relay refuses our sender on policy grounds (check CRM_MAIL_FROM and login)"
    return None


# How many different recipients must get the same permanent refusal, with nothing accepted,
# before it counts as the relay refusing us. Three: one refusal is that address; two alike can be
# chance; three alike before any acceptance is the relay's policy.
REFUSAL_STREAK = 3
_ADDRESS = re.compile(r"<[^<>]*>|[^\s<>@]+@[^\s<>@]+")


def refusal_signature(failure: SendFailure) -> str | None:
    """The reply to a RCPT refusal with the addresses taken out, when the same text could be the
    relay's answer to every recipient; None when it can only be about this address.

    Counted: permanent (5xx) replies to RCPT. Not counted: RFC 3463 addressing (X.1.x) and
    mailbox (X.2.x) statuses - "user unknown", "mailbox full" are always about one address, even
    when a run of bad addresses gets them one after another.
    """
    if failure.stage is not Stage.RECIPIENT or not is_permanent(failure.code):
        return None
    enhanced = enhanced_code(failure.message)
    if enhanced is not None and enhanced[1] in (1, 2):
        return None
    text = " ".join(_ADDRESS.sub("<>", failure.message).lower().split())
    return f"{failure.code} {text}"


@dataclass(frozen=True)
class RefusalVerdict(Generic[T]):
    """What a lane does after a RCPT refusal: settle ``genuine`` rows as usual (this one is among
    them when it is not held); a non-empty ``relay_refuses`` is a configuration error: release
    those rows unattempted, flag nothing, and stop the run."""

    genuine: list[tuple[T, SendFailure]] = field(default_factory=list)
    relay_refuses: list[tuple[T, SendFailure]] = field(default_factory=list)


@dataclass
class RelayRefusals(Generic[T]):
    """The recipient refusals of one delivery run that may turn out to be the relay's.

    While nothing has been accepted and every recipient so far got the same refusal, a lane
    holds a refused row here instead of failing it (and flagging its address). ``threshold``
    different recipients alike make it a configuration error: the caller releases every held
    row unattempted. Anything else (an acceptance, another reply) proves the held refusals
    genuine, as does the end of the run: the caller then settles them as usual. Counted over the
    run rather than per connection: with 8 connections a small batch gives each only one or
    two recipients, yet the relay answers all of them the same.
    """

    threshold: int = REFUSAL_STREAK
    signature: str | None = None
    held: list[tuple[T, SendFailure]] = field(default_factory=list)
    recipients: set[str] = field(default_factory=set)
    spoiled: bool = False  # something but this one refusal happened: no streak any more

    def _flush(self) -> list[tuple[T, SendFailure]]:
        genuine, self.held = self.held, []
        return genuine

    def other_outcome(self) -> list[tuple[T, SendFailure]]:
        """An acceptance or any other outcome: the held refusals are genuine (returned)."""
        self.spoiled = True
        return self._flush()

    def finish(self) -> list[tuple[T, SendFailure]]:
        """The run ends: whatever is still held is genuine."""
        return self._flush()

    def refused(self, recipient: str, item: T, failure: SendFailure) -> RefusalVerdict[T]:
        """Record a permanent RCPT refusal."""
        signature = refusal_signature(failure)
        if (
            self.spoiled
            or signature is None
            or (self.signature is not None and signature != self.signature)
        ):
            return RefusalVerdict(genuine=[*self.other_outcome(), (item, failure)])
        self.signature = signature
        self.held.append((item, failure))
        self.recipients.add(recipient.lower())
        if len(self.recipients) >= self.threshold:
            return RefusalVerdict(relay_refuses=self._flush())
        return RefusalVerdict()


def refusal_message(endpoint: str, failure: SendFailure, cause: str) -> str:
    """The one line an operator reads when the relay refuses us (mask it: it quotes addresses)."""
    return (
        f"SMTP relay {endpoint} refused the client: {failure.describe()[:200]} - {cause}. "
        "Rows stay pending with their attempts; no address was flagged."
    )


def is_policy_refusal(failure: SendFailure) -> bool:
    """A 5.7.x reply: a security or policy decision, which says nothing about the address."""
    enhanced = enhanced_code(failure.message)
    return enhanced is not None and enhanced[:2] == (5, 7)


def is_permanent(code: int | None) -> bool:
    """5xx replies are permanent (RFC 5321 §4.2.1); 4xx and no reply at all are transient."""
    return code is not None and 500 <= code <= 599


UNKNOWN_PREFIX = "unknown outcome"


def decide(
    failure: SendFailure, *, attempts: int, max_attempts: int, had_unknown: bool = False
) -> Decision:
    """``attempts`` counts this attempt (the SMTP transactions of the row so far, this one
    included); ``had_unknown``: an earlier attempt already ended with no reply to DATA.

    A reply to DATA that never came may mean the server stored the message: it is tried once
    more, after a long delay (resending at once would likely duplicate it); twice unknown is
    failed for a person to look at rather than risk a third copy.
    """
    if failure.stage is Stage.UNKNOWN:
        return Decision(Disposition.FAILED if had_unknown else Disposition.UNKNOWN)
    if failure.stage is Stage.CONNECT:
        # No server took part: an outage must not use up a message's attempts.
        return Decision(Disposition.RELEASE)
    if client_refusal(failure) is not None:
        return Decision(Disposition.CONFIGURATION)
    if failure.stage is Stage.UNSUPPORTED:
        return Decision(Disposition.FAILED)
    if is_permanent(failure.code):
        if failure.stage is Stage.RECIPIENT:
            return Decision(Disposition.FAILED, flag_recipient=not is_policy_refusal(failure))
        return Decision(Disposition.FAILED)
    if attempts >= max_attempts:
        return Decision(Disposition.FAILED)
    return Decision(Disposition.RETRY)


def backoff_delay(attempts: int, *, base_s: float, max_s: float, jitter: float) -> float:
    """Exponential backoff with jitter, in seconds, before attempt ``attempts + 1``.

    ``jitter`` is a number in [0, 1) (from the caller's random source): the delay lands in the
    upper half of the exponential step (``step * (0.5 + jitter / 2)``), so retries of a burst of
    messages spread out but never come back sooner than half the nominal delay.
    """
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    exponent = max(attempts - 1, 0)
    # Cap the exponent before computing, so huge attempt counts cannot overflow a float.
    step = max_s if exponent >= 60 else min(max_s, base_s * (2.0**exponent))
    return step * (0.5 + jitter / 2)


def next_attempt_at(
    now: datetime, attempts: int, *, base_s: float, max_s: float, jitter: float
) -> datetime:
    return now + timedelta(
        seconds=backoff_delay(attempts, base_s=base_s, max_s=max_s, jitter=jitter)
    )
