"""Address validation and MIME assembly, checked by parsing the serialised bytes back (what a
receiver sees), with the stock ``email`` package on both sides."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.mail.kinds import get_kind
from tasks.mail.message import (
    Attachment,
    InvalidRecipient,
    build_message,
    message_bytes,
    validate_address,
)
from tasks.mail.render import RenderedEmail, clean_subject, render_email

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=timezone(timedelta(hours=8)))
SENDER = "CRM Flows <crm@example.test>"
UNSUB = "http://127.0.0.1:8000/u/eyJjdXN0b21lciI6NDIsImV4cCI6MTgwODAwMDAwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"
SIMPLE = RenderedEmail(subject="Hello", text="Plain text body\n", html="<p>HTML body</p>")


def build(
    rendered: RenderedEmail = SIMPLE,
    *,
    email: str = "tanaka@example.test",
    name: str = "田中 太郎",
    unsubscribe: str | None = UNSUB,
    message_id: str = "<0123abcd@example.test>",
    reply_to: str | None = None,
) -> EmailMessage:
    return build_message(
        reply_to=reply_to,
        message_id=message_id,
        sender=SENDER,
        recipient_email=email,
        recipient_name=name,
        rendered=rendered,
        date=NOW,
        unsubscribe_url=unsubscribe,
    )


def parsed(message: EmailMessage) -> EmailMessage:
    raw = message_bytes(message)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = message_from_bytes(raw, policy=policy.default)
    assert isinstance(back, EmailMessage)
    return back


def content(part: MIMEPart) -> str:
    """A text part's decoded content, line ends normalised to LF."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def stock_body(text: str) -> str:
    """What the stock ``set_content`` makes of a body: it ends every body with a line break."""
    return text if text.endswith("\n") else text + "\n"


# ------------------------------------------------------------------ validate_address


@pytest.mark.parametrize(
    ("email", "name", "expected"),
    [
        ("tanaka@example.test", "田中 太郎", ("tanaka@example.test", "田中 太郎")),
        ("Tanaka@EXAMPLE.Test", "  Tanaka   Taro ", ("Tanaka@example.test", "Tanaka Taro")),
        ("  li.na+crm@example.com  ", "", ("li.na+crm@example.com", "")),
        ("a@例え.jp", "Zoë 😀", ("a@xn--r8jz45g.jp", "Zoë 😀")),
        (
            "o'brien@example.test",
            'Eve "The Boss" <x>',
            ("o'brien@example.test", 'Eve "The Boss" <x>'),
        ),
    ],
)
def test_validate_address_normalises(email: str, name: str, expected: tuple[str, str]) -> None:
    assert validate_address(email, name) == expected


@pytest.mark.parametrize(
    ("email", "name", "field"),
    [
        ("a@x.test>\r\nRCPT TO:<e@evil.test>", "", "email"),
        ("a@x.test\r\nBcc: e@evil.test", "", "email"),
        ("a@x.test\n", "", "email"),
        ("a@x.test\x00", "", "email"),
        ("Eve <eve@x.test>", "", "email"),
        ("<eve@x.test>", "", "email"),
        ("eve@x.test, mallory@x.test", "", "email"),
        ("", "", "email"),
        ("   ", "", "email"),
        ("no-at-sign", "", "email"),
        ("a@@x.test", "", "email"),
        ("a b@x.test", "", "email"),
        ('"quoted"@x.test', "", "email"),
        ("a@[127.0.0.1]", "", "email"),
        ("a@localhost", "", "email"),
        ("田中@example.test", "", "email"),  # needs SMTPUTF8, which our relay path does not use
        ("a@x.test", "Eve\r\nBcc: x@evil.test", "name"),
        ("a@x.test", "Eve\nBcc: x@evil.test", "name"),
        ("a@x.test", "Eve\tTab", "name"),
        ("a@x.test", "Eve\x00", "name"),
        ("a@x.test", "Eve\u2028Line", "name"),
        ("a@x.test", "x" * 201, "name"),
    ],
)
def test_validate_address_refuses(email: str, name: str, field: str) -> None:
    with pytest.raises(InvalidRecipient) as err:
        validate_address(email, name)
    assert err.value.field == field
    assert "evil" not in str(err.value)  # the problem is described, the value never echoed


# ------------------------------------------------------------------ build_message structure


def test_message_structure_round_trips() -> None:
    rendered = render_email("revisit_care", "zh-CN", get_kind("revisit_care").sample_context)
    back = parsed(build(rendered))
    assert back.get_content_type() == "multipart/alternative"
    parts = list(back.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert content(parts[0]) == rendered.text
    assert content(parts[1]) == stock_body(rendered.html)
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert back["Subject"] == rendered.subject
    assert back["From"].addresses[0].addr_spec == "crm@example.test"
    assert back["From"].addresses[0].display_name == "CRM Flows"
    (to,) = back["To"].addresses
    assert (to.display_name, to.addr_spec) == ("田中 太郎", "tanaka@example.test")
    assert back["Message-ID"] == "<0123abcd@example.test>"
    assert back["Date"].datetime == NOW
    assert back["MIME-Version"] == "1.0"
    assert back["List-Unsubscribe"] == f"<{UNSUB}>"
    assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert back.get_all("Bcc") is None and back.get_all("Cc") is None
    for header in ("Subject", "From", "To", "Date", "Message-ID"):
        assert len(back.get_all(header) or []) == 1


def test_the_built_object_reads_like_any_email_message() -> None:
    message = build(RenderedEmail(subject="S", text="纯文本\n", html="<p>h</p>"))
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert content(plain) == "纯文本\n" and content(html) == "<p>h</p>\n"
    assert message["Message-ID"] == "<0123abcd@example.test>"
    assert [a.addr_spec for a in message["To"].addresses] == ["tanaka@example.test"]


def test_reply_to_only_when_given_and_validated() -> None:
    assert "Reply-To" not in parsed(build())
    back = parsed(build(reply_to="Wang.XM@Example.test"))
    assert back["Reply-To"] == "Wang.XM@example.test"
    with pytest.raises(InvalidRecipient):
        build(reply_to="not an address")


def test_list_unsubscribe_only_when_given() -> None:
    back = parsed(build(unsubscribe=None))
    assert "List-Unsubscribe" not in back and "List-Unsubscribe-Post" not in back


def test_long_unsubscribe_url_stays_one_followable_line() -> None:
    url = "https://crm.example.test/u/" + "A" * 300
    raw = message_bytes(build(unsubscribe=url))
    assert f"List-Unsubscribe: <{url}>\r\n".encode() in raw  # not folded into encoded words
    assert message_from_bytes(raw, policy=policy.default)["List-Unsubscribe"] == f"<{url}>"


def test_ascii_parts_are_7bit_and_readable() -> None:
    long_line = "word " * 60
    rendered = RenderedEmail(subject="S", text=f"{long_line}\nend\n", html=f"<p>{long_line}</p>")
    raw = message_bytes(build(rendered))
    assert raw.count(b"Content-Transfer-Encoding: 7bit") == 2
    assert long_line.encode() in raw  # readable as it is, lines within RFC 5322's 998
    back = parsed(build(rendered))
    assert [content(p) for p in back.iter_parts()] == [rendered.text, stock_body(rendered.html)]


def test_ascii_lines_too_long_for_7bit_go_base64() -> None:
    rendered = RenderedEmail(subject="S", text="x" * 2000 + "\n", html="<p>h</p>")
    raw = message_bytes(build(rendered))
    assert b"Content-Transfer-Encoding: base64" in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = parsed(build(rendered))
    assert content(next(back.iter_parts())) == rendered.text


def test_non_ascii_parts_are_base64_never_8bit() -> None:
    rendered = RenderedEmail(subject="S", text="您好，田中先生\n", html="<p>您好</p>")
    raw = message_bytes(build(rendered))
    assert b"Content-Transfer-Encoding: base64" in raw and b"8bit" not in raw
    assert raw.isascii()
    back = parsed(build(rendered))
    assert [content(p) for p in back.iter_parts()] == [rendered.text, stock_body(rendered.html)]


def test_subject_with_a_literal_encoded_word_is_decoded_by_the_stock_header() -> None:
    """Documents stock behaviour (the old custom header class sent such text literally): the
    stdlib's unstructured header decodes a valid RFC 2047 encoded word when the value is
    assigned, so the receiver sees the decoded text. Only text our templates render reaches a
    subject; a stray "=?" that is not a valid encoded word arrives as it is."""
    cases = {
        "Re: =?utf-8?q?hi?=": "Re: hi",
        "回访 =?utf-8?b?5Zue?= 提醒": "回访 回 提醒",
        "=?": "=?",
        "50% off =? no": "50% off =? no",
    }
    for subject, arrives in cases.items():
        back = parsed(build(RenderedEmail(subject=subject, text="t\n", html="<p>h</p>")))
        assert back["Subject"] == arrives


def test_display_name_with_encoded_word_is_decoded_by_the_stock_header() -> None:
    """Stock behaviour, as for subjects: the receiver sees the encoded word decoded. The
    address itself cannot be changed this way."""
    back = parsed(build(name="=?utf-8?q?Boss?= Eve"))
    (to,) = back["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Boss Eve", "tanaka@example.test")


def test_long_cjk_subject_and_name_round_trip() -> None:
    subject = "【客户回访】" + "田中 太郎的加油卡充值问题跟进" * 8
    name = "非常长的客户名称" * 10
    back = parsed(build(RenderedEmail(subject=subject, text="t\n", html="<p>h</p>"), name=name))
    assert back["Subject"] == subject  # unstructured: CPython joins encoded words correctly
    # In a display name CPython's parser puts a space between adjacent encoded words (mail
    # clients do not, RFC 2047 6.2); the characters and their order must still all arrive.
    assert back["To"].addresses[0].display_name.replace(" ", "") == name


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: x@evil.test", "Eve\nBcc: x@evil.test", "Eve\rBcc: x@evil.test"]
)
def test_header_injection_through_the_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidRecipient) as err:
        build(name=name)
    assert err.value.field == "name"


def test_header_injection_through_the_address_is_refused() -> None:
    with pytest.raises(InvalidRecipient) as err:
        build(email="a@x.test>\r\nRCPT TO:<e@evil.test>")
    assert err.value.field == "email"


@pytest.mark.parametrize(
    "subject", ["Hello\r\nBcc: x@evil.test", "Hello\nBcc: x@evil.test", "a\x00b"]
)
def test_multi_line_subject_is_refused(subject: str) -> None:
    with pytest.raises(ValueError, match="single line"):
        build(RenderedEmail(subject=subject, text="t", html="h"))


@pytest.mark.parametrize(
    "url",
    [
        "https://x.test/u/a\r\nBcc: x@evil.test",
        "https://x.test/u/a b",
        "https://x.test/u/<a>",
        "javascript:alert(1)",
        "mailto:x@evil.test",
        "https://x.test/" + "a" * 1000,
    ],
)
def test_bad_unsubscribe_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="unsubscribe_url"):
        build(unsubscribe=url)


def test_message_id_is_normalised_and_checked() -> None:
    assert parsed(build(message_id="abc.123@example.test"))["Message-ID"] == (
        "<abc.123@example.test>"
    )
    for bad in ("<a@b>\r\nBcc: x@evil.test", "no-at-sign", "<a b@c>", "<a@b@c>", ""):
        with pytest.raises(ValueError, match="message_id"):
            build(message_id=bad)


def test_naive_date_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_message(
            message_id="<a@b.test>",
            sender=SENDER,
            recipient_email="a@x.test",
            recipient_name="",
            rendered=SIMPLE,
            date=datetime(2026, 3, 2, 8, 0),
            unsubscribe_url=None,
        )


def test_recipient_without_name_is_a_bare_address() -> None:
    back = parsed(build(name=""))
    assert back["To"] == "tanaka@example.test"


# ------------------------------------------------------------------ properties


def _check_round_trip(message: EmailMessage, email: str, name: str, subject: str) -> None:
    back = parsed(message)
    assert len(back.get_all("To") or []) == 1
    assert back.get_all("Bcc") is None and back.get_all("Cc") is None
    (to,) = back["To"].addresses
    assert to.addr_spec == email
    assert [p.get_content_type() for p in back.iter_parts()] == ["text/plain", "text/html"]
    if "=?" in name or "=?" in subject:
        return  # a valid encoded word in the text is decoded (see the stock-behaviour tests)
    if name.isascii():
        assert to.display_name == name
    else:
        # A non-ASCII name goes out as RFC 2047 encoded words; when it
        # takes several, CPython's phrase parser (unlike mail clients, RFC 2047 6.2) puts a
        # space between them.
        assert to.display_name.replace(" ", "") == name.replace(" ", "")
    assert back["Subject"] == subject


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=120), subject=st.text(max_size=200))
def test_arbitrary_names_and_subjects_never_inject_headers(name: str, subject: str) -> None:
    rendered = RenderedEmail(subject=clean_subject(subject), text="t\n", html="<p>h</p>")
    try:
        message = build(rendered, name=name)
    except InvalidRecipient as exc:
        assert exc.field == "name"
        return
    _check_round_trip(message, "tanaka@example.test", " ".join(name.split()), rendered.subject)


_ASCII_WORDS = st.lists(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120),
    max_size=12,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(subject=_ASCII_WORDS, name=_ASCII_WORDS)
def test_ascii_subjects_and_names_fold_back_exactly(subject: str, name: str) -> None:
    rendered = RenderedEmail(subject=clean_subject(subject), text="t\n", html="<p>h</p>")
    try:
        message = build(rendered, name=name)
    except InvalidRecipient as exc:
        assert exc.field == "name"  # only the length limit can refuse printable ASCII
        assert len(" ".join(name.split())) > 200
        return
    _check_round_trip(message, "tanaka@example.test", " ".join(name.split()), rendered.subject)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(max_size=80))
def test_arbitrary_customer_names_through_render_and_build(name: str) -> None:
    context = copy.deepcopy(get_kind("revisit_care").sample_context) | {"customer_name": name}
    rendered = render_email("revisit_care", "en", context)
    assert rendered.subject == clean_subject(rendered.subject)
    try:
        message = build(rendered, name=name)
    except InvalidRecipient as exc:
        assert exc.field == "name"
        return
    _check_round_trip(message, "tanaka@example.test", " ".join(name.split()), rendered.subject)


@settings(max_examples=200, deadline=None)
@given(email=st.text(max_size=60) | st.emails())
def test_arbitrary_addresses_are_refused_or_round_trip(email: str) -> None:
    try:
        normalised, _ = validate_address(email)
    except InvalidRecipient as exc:
        assert exc.field == "email"
        return
    assert normalised.isascii() and "<" not in normalised and "\n" not in normalised
    _check_round_trip(build(email=email, name="N"), normalised, "N", SIMPLE.subject)


# ------------------------------------------------------------------ attachments, determinism

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
XLSX = b"PK\x03\x04" + bytes(range(256)) * 40
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _with_attachments(message_id: str = "<0123abcd@example.test>") -> EmailMessage:
    rendered = RenderedEmail(
        subject="月度目标报表",
        text="见附件\n",
        html='<p>图表</p><img src="cid:chart1@crm-flows"><img src="cid:chart2@crm-flows">',
    )
    return build_message(
        message_id=message_id,
        sender=SENDER,
        recipient_email="tanaka@example.test",
        recipient_name="田中 太郎",
        rendered=rendered,
        date=NOW,
        unsubscribe_url=None,
        attachments=[
            Attachment("chart1.png", "image/png", PNG, "chart1@crm-flows"),
            Attachment("报表 2026-03.xlsx", XLSX_TYPE, XLSX),
            Attachment("chart2.png", "image/png", PNG[::-1], "chart2@crm-flows"),
        ],
    )


def test_attachments_arrive_as_mixed_with_related_html() -> None:
    back = parsed(_with_attachments())
    assert back.get_content_type() == "multipart/mixed"
    alternative, report = list(back.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    plain, related = list(alternative.iter_parts())
    assert plain.get_content_type() == "text/plain" and content(plain) == "见附件\n"
    assert related.get_content_type() == "multipart/related"
    html, image1, image2 = list(related.iter_parts())
    assert html.get_content_type() == "text/html"
    assert 'src="cid:chart1@crm-flows"' in content(html)
    assert (image1["Content-ID"], image1.get_content()) == ("<chart1@crm-flows>", PNG)
    assert (image2["Content-ID"], image2.get_content()) == ("<chart2@crm-flows>", PNG[::-1])
    assert image1.get_content_disposition() == "inline"
    assert report.get_content_type() == XLSX_TYPE
    assert report.get_content_disposition() == "attachment"
    assert report.get_filename() == "报表 2026-03.xlsx"
    assert report.get_content() == XLSX
    # The receiver's own accessors find the HTML body and the attachment.
    body = back.get_body(("html",))
    assert body is not None and body.get_content_type() == "text/html"
    assert [p.get_filename() for p in back.iter_attachments()] == ["报表 2026-03.xlsx"]


def test_the_same_row_builds_the_same_bytes() -> None:
    first = message_bytes(_with_attachments())
    assert message_bytes(_with_attachments()) == first
    assert message_bytes(build()) == message_bytes(build())
    # Another Message-ID: other boundaries (they derive from it), same content.
    other = message_bytes(_with_attachments("<feedbeef@example.test>"))
    assert other != first
    assert parsed(_with_attachments("<feedbeef@example.test>"))["Subject"] == "月度目标报表"


@pytest.mark.parametrize(
    ("attachment", "problem"),
    [
        (Attachment("a.png", "image/png", b""), "non-empty"),
        (Attachment("a/b.png", "image/png", b"x"), "filename"),
        (Attachment("a\r\n.png", "image/png", b"x"), "filename"),
        (Attachment("a.png", "image/png\r\nBcc: x@evil.test", b"x"), "content_type"),
        (Attachment("a.txt", "text/plain", b"x"), "binary type"),
        (Attachment("a.png", "image/png", b"x", "<c@d>"), "content_id"),
        (Attachment("a.png", "image/png", b"x", "c d@e"), "content_id"),
        (Attachment("a.xlsx", XLSX_TYPE, b"x", "c@d"), "image"),
    ],
)
def test_bad_attachments_are_refused(attachment: Attachment, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build_message(
            message_id="<a@b.test>",
            sender=SENDER,
            recipient_email="a@x.test",
            recipient_name="",
            rendered=SIMPLE,
            date=NOW,
            unsubscribe_url=None,
            attachments=[attachment],
        )
