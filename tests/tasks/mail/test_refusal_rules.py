"""``classify.client_refusal`` and ``decide`` on the replies real relays give (pure)."""

from __future__ import annotations

import pytest

from tasks.mail.classify import (
    Disposition,
    RelayRefusals,
    SendFailure,
    Stage,
    client_refusal,
    decide,
    refusal_signature,
)

CONFIGURATION = [
    (Stage.RECIPIENT, 554, "5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"),
    (Stage.RECIPIENT, 454, "4.7.1 <a@b.test>: Relay access denied"),
    (Stage.RECIPIENT, 550, "5.7.1 <a@b.test>... Relaying denied"),
    (Stage.SENDER, 530, "5.7.0 Must issue a STARTTLS command first"),
    (Stage.SENDER, 530, "5.7.0 Authentication required"),
    (Stage.SENDER, 553, "5.7.1 <crm@example.test>: Sender address rejected: not owned by user"),
]
PER_RECIPIENT = [
    (Stage.RECIPIENT, 550, "5.1.1 <a@b.test>: Recipient address rejected: User unknown", True),
    (Stage.RECIPIENT, 554, "5.7.1 <a@b.test>: Recipient address rejected: Access denied", False),
]


@pytest.mark.parametrize(("stage", "code", "text"), CONFIGURATION)
def test_refusals_of_the_client_are_configuration(stage: Stage, code: int, text: str) -> None:
    failure = SendFailure(stage, code, text)
    assert client_refusal(failure) is not None
    decision = decide(failure, attempts=1, max_attempts=8)
    assert decision.disposition is Disposition.CONFIGURATION and not decision.flag_recipient


@pytest.mark.parametrize(("stage", "code", "text", "flag"), PER_RECIPIENT)
def test_refusals_of_one_recipient_fail_that_row(
    stage: Stage, code: int, text: str, flag: bool
) -> None:
    failure = SendFailure(stage, code, text)
    assert client_refusal(failure) is None
    decision = decide(failure, attempts=1, max_attempts=8)
    assert decision.disposition is Disposition.FAILED and decision.flag_recipient is flag


def test_530_names_starttls_not_authentication() -> None:
    starttls = client_refusal(
        SendFailure(Stage.SENDER, 530, "5.7.0 Must issue a STARTTLS command first")
    )
    auth = client_refusal(SendFailure(Stage.SENDER, 530, "5.7.0 Authentication required"))
    assert starttls is not None and "STARTTLS" in starttls and "authentication" not in starttls
    assert auth is not None and "authentication" in auth


def _rcpt(text: str, code: int = 554) -> SendFailure:
    return SendFailure(Stage.RECIPIENT, code, text)


def test_a_refusal_signature_leaves_out_the_addresses() -> None:
    one = _rcpt("5.7.1 <a@x.test>: Recipient address rejected: Access denied")
    other = _rcpt("5.7.1 <b@y.test>: Recipient address rejected:  Access DENIED")
    assert refusal_signature(one) == refusal_signature(other) is not None
    assert "@" not in (refusal_signature(one) or "")


@pytest.mark.parametrize(
    "failure",
    [
        _rcpt("5.1.1 <a@x.test>: Recipient address rejected: User unknown", 550),
        _rcpt("5.2.2 <a@x.test>: mailbox full", 552),
        _rcpt("4.7.1 <a@x.test>: try later", 450),
        SendFailure(Stage.DATA, 554, "5.7.1 message content rejected"),
    ],
)
def test_address_specific_or_transient_refusals_have_no_signature(failure: SendFailure) -> None:
    assert refusal_signature(failure) is None


def test_three_recipients_refused_alike_before_any_acceptance_is_the_relay() -> None:
    refusals: RelayRefusals[int] = RelayRefusals()
    denied = "5.7.1 <{}>: Recipient address rejected: Access denied"
    first = refusals.refused("a@x.test", 1, _rcpt(denied.format("a@x.test")))
    # The same recipient twice counts once.
    again = refusals.refused("A@x.test", 2, _rcpt(denied.format("A@x.test")))
    assert (first.genuine, first.relay_refuses, again.relay_refuses) == ([], [], [])
    second = refusals.refused("b@x.test", 3, _rcpt(denied.format("b@x.test")))
    assert second.relay_refuses == []
    third = refusals.refused("c@y.test", 4, _rcpt(denied.format("c@y.test")))
    assert [item for item, _ in third.relay_refuses] == [1, 2, 3, 4]
    assert third.genuine == [] and refusals.finish() == []


def test_an_acceptance_or_another_reply_proves_the_held_refusals_genuine() -> None:
    refusals: RelayRefusals[int] = RelayRefusals()
    refusals.refused("a@x.test", 1, _rcpt("5.7.1 <a@x.test>: Access denied"))
    assert [item for item, _ in refusals.other_outcome()] == [1]
    # Once anything else happened in the run, no refusal is held any more.
    later = refusals.refused("b@x.test", 2, _rcpt("5.7.1 <b@x.test>: Access denied"))
    assert [item for item, _ in later.genuine] == [2] and later.relay_refuses == []


def test_a_different_refusal_ends_the_streak_and_releases_both() -> None:
    refusals: RelayRefusals[int] = RelayRefusals()
    refusals.refused("a@x.test", 1, _rcpt("5.7.1 <a@x.test>: Access denied"))
    verdict = refusals.refused("b@x.test", 2, _rcpt("5.7.1 <b@x.test>: blocked by policy"))
    assert [item for item, _ in verdict.genuine] == [1, 2] and verdict.relay_refuses == []


def test_refusals_still_held_when_the_run_ends_are_genuine() -> None:
    refusals: RelayRefusals[int] = RelayRefusals()
    refusals.refused("a@x.test", 1, _rcpt("5.7.1 <a@x.test>: Access denied"))
    assert [item for item, _ in refusals.finish()] == [1]
