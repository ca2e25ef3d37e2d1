"""Survey emails as delivery builds them: the one-click score links are signed for the
invitation (purpose ``survey_answer``, claim ``invitation``, ``/s/{token}?score=N``), expire with
it, and only the question they answer is asked; the outbox keys."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import Message

import pytest

from crm_core.signing import verify
from crm_db.enums import SurveyKind
from tasks.mail.build import BuildJob, build_one
from tasks.mail.links import SURVEY_ANSWER_PURPOSE
from tasks.surveys.emails import invitation_key, reminder_key, survey_context

BASE_URL = "https://crm.example.test"
KEY = b"k" * 32
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
_LINK = re.compile(r"https://crm\.example\.test/s/([A-Za-z0-9_.-]+)\?score=(\d+)")


def _build(kind: str, survey: SurveyKind, locale: str) -> tuple[str, str, str]:
    context = survey_context(
        customer_name="李<b>四</b>",
        kind=survey,
        invitation_id=42,
        expires_at=EXPIRES,
        expires_on=date(2026, 12, 7),
        complaint_reference="CP-9" if survey is SurveyKind.CSAT else None,
    )
    job = BuildJob(
        kind=kind,
        locale=locale,
        context=context,
        message_id="<m@example.test>",
        recipient_email="li@example.test",
        recipient_name="李四",
        unsubscribe_customer=7,
        outbox_id=1,
        date=NOW,
    )
    built = build_one(
        job, sender="西湖能源 <crm@example.test>", base_url=BASE_URL, date=NOW, key=KEY
    )
    assert isinstance(built, bytes), built
    message = message_from_bytes(built)
    parts: dict[str, str] = {}
    for part in message.walk():
        if isinstance(part, Message) and part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            parts[part.get_content_subtype()] = payload.decode(
                part.get_content_charset() or "utf-8"
            )
    return str(message["Subject"]), parts["plain"], parts["html"]


@pytest.mark.parametrize("kind", ["survey_invitation", "survey_reminder"])
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize(
    ("survey", "scores"), [(SurveyKind.NPS, list(range(11))), (SurveyKind.CSAT, [1, 2, 3, 4, 5])]
)
def test_one_click_links_name_the_invitation_and_expire_with_it(
    kind: str, locale: str, survey: SurveyKind, scores: list[int]
) -> None:
    _, text, html = _build(kind, survey, locale)
    for body in (text, html.replace("&amp;", "&")):
        links = _LINK.findall(body)
        assert [int(score) for _, score in links] == scores
        for token, _ in links:
            assert verify(KEY, SURVEY_ANSWER_PURPOSE, token, NOW) == {"invitation": 42}
            assert verify(KEY, SURVEY_ANSWER_PURPOSE, token, EXPIRES) is None  # expired
    assert "/u/" in text  # the unsubscribe link, as in every customer email
    assert "<b>四</b>" not in html and "&lt;b&gt;" in html  # the name is escaped


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_only_the_question_the_links_answer_is_asked(locale: str) -> None:
    _, nps_text, _ = _build("survey_invitation", SurveyKind.NPS, locale)
    _, csat_text, _ = _build("survey_invitation", SurveyKind.CSAT, locale)
    recommend = "推荐" if locale == "zh-CN" else "recommend"
    assert recommend in nps_text and recommend not in csat_text
    assert "CP-9" in csat_text
    # Above the footer, links left out: one question.
    body = _LINK.sub("", nps_text.split("\n—" if locale == "zh-CN" else "\n--")[0])
    assert body.count("?" if locale == "en" else "？") == 1


def test_outbox_keys() -> None:
    assert invitation_key("nps:2026Q4:A", 123, None) == "survey:nps:2026Q4:A:customer:123"
    assert invitation_key("csat:2026-11", 123, 45) == "survey:csat:complaint:45"
    assert reminder_key(678) == "survey_reminder:invitation:678"
