"""``classify.client_refusal`` and ``decide`` on the replies real relays give (pure)."""

from __future__ import annotations

import pytest

from tasks.mail.classify import Disposition, SendFailure, Stage, client_refusal, decide

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
