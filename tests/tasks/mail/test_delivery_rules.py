"""Pure delivery rules: failure classification, backoff with explicit times, consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.mail.classify import (
    Decision,
    Disposition,
    SendFailure,
    Stage,
    backoff_delay,
    decide,
    next_attempt_at,
    suppression_reason,
)

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failure", "attempts", "expected"),
    [
        # Transient: 4xx, broken connections and timeouts retry until the last attempt.
        (SendFailure(Stage.DATA, 451, "try later"), 1, Decision(Disposition.RETRY)),
        (SendFailure(Stage.RECIPIENT, 452, "mailbox full"), 2, Decision(Disposition.RETRY)),
        (SendFailure(Stage.PROTOCOL, 421, "closing"), 1, Decision(Disposition.RETRY)),
        (SendFailure(Stage.DISCONNECT, None, "lost"), 1, Decision(Disposition.RETRY)),
        (SendFailure(Stage.TIMEOUT, None, "slow"), 4, Decision(Disposition.RETRY)),
        (SendFailure(Stage.DATA, 451, "try later"), 5, Decision(Disposition.FAILED)),
        (SendFailure(Stage.TIMEOUT, None, "slow"), 5, Decision(Disposition.FAILED)),
        # Permanent: 5xx fails at once; only a refused recipient flags the address.
        (SendFailure(Stage.RECIPIENT, 550, "no such user"), 1, Decision(Disposition.FAILED, True)),
        (SendFailure(Stage.DATA, 554, "spam"), 1, Decision(Disposition.FAILED)),
        (SendFailure(Stage.SENDER, 552, "too big"), 1, Decision(Disposition.FAILED)),
        (SendFailure(Stage.UNSUPPORTED, None, "no SMTPUTF8"), 1, Decision(Disposition.FAILED)),
        # Nothing attempted: the row goes back untouched, whatever the attempt count.
        (SendFailure(Stage.CONNECT, None, "refused"), 5, Decision(Disposition.RELEASE)),
        (SendFailure(Stage.CONNECT, 421, "busy"), 1, Decision(Disposition.RELEASE)),
    ],
)
def test_decide(failure: SendFailure, attempts: int, expected: Decision) -> None:
    assert decide(failure, attempts=attempts, max_attempts=5) == expected


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    # jitter 0.999... puts each delay at (almost) its nominal step.
    top = 1 - 1e-12
    steps = [backoff_delay(n, base_s=60, max_s=3600, jitter=top) for n in range(1, 9)]
    assert [round(s) for s in steps] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_delay(10_000, base_s=60, max_s=3600, jitter=top) == pytest.approx(3600)


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.99])
def test_jitter_keeps_the_delay_in_the_upper_half_of_the_step(jitter: float) -> None:
    delay = backoff_delay(3, base_s=60, max_s=3600, jitter=jitter)
    assert 120 <= delay <= 240
    assert delay == pytest.approx(240 * (0.5 + jitter / 2))


def test_jitter_outside_its_range_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay(1, base_s=60, max_s=3600, jitter=1.0)


def test_next_attempt_at_uses_the_time_passed_in() -> None:
    assert next_attempt_at(NOW, 1, base_s=60, max_s=3600, jitter=0.0) == NOW + timedelta(seconds=30)
    assert next_attempt_at(NOW, 2, base_s=60, max_s=3600, jitter=0.5) == NOW + timedelta(seconds=90)


@pytest.mark.parametrize(
    ("audience", "consent", "flags", "expected"),
    [
        ("customer", "marketing", {}, None),
        ("customer", "marketing", {"unsubscribed": True}, "customer unsubscribed"),
        ("customer", None, {"unsubscribed": True}, "customer unsubscribed"),
        ("customer", "marketing", {"marketing_opt_out": True}, "marketing"),
        ("customer", "marketing", {"survey_opt_out": True}, None),
        ("customer", "survey", {"survey_opt_out": True}, "surveys"),
        ("customer", "survey", {"marketing_opt_out": True}, None),
        ("customer", None, {"marketing_opt_out": True, "survey_opt_out": True}, None),
        ("staff", None, {"unsubscribed": True, "marketing_opt_out": True}, None),
    ],
)
def test_suppression_reason(
    audience: str, consent: str | None, flags: dict[str, bool], expected: str | None
) -> None:
    values = {"unsubscribed": False, "marketing_opt_out": False, "survey_opt_out": False}
    values.update(flags)
    reason = suppression_reason(audience=audience, consent_flag=consent, **values)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_failure_description_is_bounded() -> None:
    text = SendFailure(Stage.DATA, 554, "x" * 2000).describe()
    assert text.startswith("data: 554 x") and len(text) == 500


def test_no_reply_after_data_is_unknown_once_then_failed() -> None:
    silent = SendFailure(Stage.UNKNOWN, None, "no reply to DATA within 600 s")
    first = decide(silent, attempts=1, max_attempts=8)
    assert first.disposition is Disposition.UNKNOWN
    # Unknown twice is failed, even with attempts to spare: a third copy is worse.
    again = decide(silent, attempts=2, max_attempts=8, had_unknown=True)
    assert again.disposition is Disposition.FAILED
    # A clear 451 on the retry of an unknown outcome is an ordinary retry.
    busy = SendFailure(Stage.DATA, 451, "try again later")
    assert decide(busy, attempts=2, max_attempts=8, had_unknown=True).disposition is (
        Disposition.RETRY
    )
