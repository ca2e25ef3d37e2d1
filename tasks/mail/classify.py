"""What to do with an outbox row (suppress it? after a failed send, retry or give up?): pure
rules, no SMTP or database imports.

The transport (``smtp_pool``) reduces whatever happened on the wire to a ``SendFailure`` (the stage
and the reply code, if any); these rules turn that into a decision. Time and randomness come in
as arguments so backoff is testable with explicit values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


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
    if failure.stage is Stage.UNSUPPORTED:
        return Decision(Disposition.FAILED)
    if is_permanent(failure.code):
        if failure.stage is Stage.RECIPIENT:
            return Decision(Disposition.FAILED, flag_recipient=True)
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
