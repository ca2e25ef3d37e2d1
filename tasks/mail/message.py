"""Address validation and MIME assembly for outgoing mail.

Built with the stdlib ``EmailMessage`` as designed, under ``POLICY`` (``email.policy.SMTP``:
CRLF line ends, and a CR or LF in a header value is refused - the legacy ``MIMEText`` API lets
a bare LF through, CVE-2024-6923). Headers are set with the stdlib's own header classes and
folded by its own folder; bodies go through ``set_content``/``add_alternative``/``add_related``/
``add_attachment``. No header class, registry or generator is overridden: header folding is a
security boundary and private APIs change between Python versions. What the stock folder does
with awkward input (e.g. a subject holding a literal ``=?...?=``) is pinned by tests in
``tests/tasks/mail/test_message.py``.

A message is a pure function of its inputs: the boundaries are derived from the Message-ID
(``set_boundary``, public API) rather than drawn at random by the generator, so rebuilding the
same outbox row on a retry gives the same bytes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from functools import lru_cache

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from tasks.mail.render import RenderedEmail, clean_subject

MAX_NAME_LENGTH = 200
_LINE_LIMIT = 998


class InvalidRecipient(ValueError):
    """An address or display name we refuse to put in a header.

    ``field`` is ``"email"`` or ``"name"``; ``problem`` says what is wrong without echoing the value
    (which is personal data and may be an injection attempt)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid recipient {field}: {problem}")
        self.field = field
        self.problem = problem


def _has_control(text: str) -> bool:
    # Cc covers CR, LF, TAB, NUL, ESC, NEL; Zl/Zp are the Unicode line/paragraph separators.
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


# Plain ASCII ``local@host.tld`` with dot-atom parts: a strict subset of what the full validator
# accepts, normalised the same way (domain lower-cased). Flows queue tens of thousands of
# messages per run and email_validator costs ~70 us per address; this check costs ~2 us.
_SIMPLE_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


# Special-use names (RFC 6761) the full validator refuses; ``.test`` is allowed, as there.
_SPECIAL_USE = frozenset(d for d in SPECIAL_USE_DOMAIN_NAMES if d != "test")


def _special_use(domain: str) -> bool:
    """Whether ``domain`` is, or is under, a special-use name (a set lookup per suffix)."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in _SPECIAL_USE for i in range(len(labels)))


# Memoised: a flow checks an address when it decides to email (``is_valid_recipient``) and the
# outbox checks it again when queuing, a few hundred rows later. Pure, so caching is safe.
@lru_cache(maxsize=8192)
def _fast_path(email: str, name: str) -> tuple[str, str] | None:
    """The common case decided cheaply, or None to take the full path (which also gives the
    precise error message)."""
    local, _, domain = email.partition("@")
    if (
        len(email) > 254
        or len(local) > 64
        or not _SIMPLE_ADDRESS.fullmatch(email)
        or "--" in domain  # "xn--" punycode and the "ab--" rule: the full validator decides
        or not name.isprintable()  # any control or separator character: the full path decides
        or _special_use(domain.lower())
    ):
        return None
    clean_name = " ".join(name.split())
    if len(clean_name) > MAX_NAME_LENGTH:
        return None
    return f"{local}@{domain.lower()}", clean_name


def validate_address(email: str, name: str = "") -> tuple[str, str]:
    """``(email, name)`` normalised for a header, or ``InvalidRecipient``.

    The email keeps its local part, gets a lower-case ASCII (IDNA) domain, and must be plain
    ``local@domain`` (no display name, no ``<>``, no quoted local part, no SMTPUTF8 since our
    relay path does not negotiate it). ``.test`` domains are accepted (demo and tests use them);
    deliverability (DNS) is not checked. The name is stripped with inner whitespace runs
    collapsed; control characters in either are refused, never cleaned, so bad data is seen."""
    if isinstance(email, str) and isinstance(name, str):
        fast = _fast_path(email, name)
        if fast is not None:
            return fast
    return _full_validation(email, name)


def is_valid_recipient(email: str | None, name: str = "") -> bool:
    """Whether ``validate_address`` would accept this recipient: flows use it to skip (and report)
    bad contact data instead of failing the whole batch when the outbox refuses it."""
    if not email:
        return False
    try:
        validate_address(email, name)
    except InvalidRecipient:
        return False
    return True


def _full_validation(email: str, name: str) -> tuple[str, str]:
    if not isinstance(email, str) or not email.strip():
        raise InvalidRecipient("email", "is empty")
    if _has_control(email):
        raise InvalidRecipient("email", "contains control characters (CR/LF/TAB/NUL)")
    if "<" in email or ">" in email:
        raise InvalidRecipient("email", "contains '<' or '>'")
    try:
        result = validate_email(
            email.strip(),
            check_deliverability=False,
            test_environment=True,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
        )
    except EmailNotValidError as exc:
        raise InvalidRecipient("email", f"bad syntax ({exc})") from None
    normalised_email = result.ascii_email or result.normalized
    if not isinstance(name, str):
        raise InvalidRecipient("name", "is not text")
    if _has_control(name):
        raise InvalidRecipient("name", "contains control characters (CR/LF/TAB/NUL)")
    clean_name = " ".join(name.split())
    if len(clean_name) > MAX_NAME_LENGTH:
        raise InvalidRecipient("name", f"longer than {MAX_NAME_LENGTH} characters")
    return normalised_email, clean_name


# Building: the stock SMTP policy with ``cte_type="7bit"``: nothing is sent as raw 8bit, which
# would need 8BITMIME from every relay on the path. Text bodies get their encoding from
# ``_transfer_encoding``; binary attachments are base64 with the stock 76-character lines
# (RFC 2045 6.8), which this policy's 78-character limit gives.
POLICY = email_policy.SMTP.clone(cte_type="7bit")
# Serialising: the same, with header lines allowed up to RFC 5322's hard limit of 998 rather
# than the recommended 78. The stock folder turns a URL that does not fit a line into encoded
# words, and a List-Unsubscribe header folded that way is not followed by mail clients; at 998
# a URL up to ~950 characters (``build_message`` refuses longer) stays whole. Bodies are
# already encoded when this applies, so their line lengths do not change.
WIRE_POLICY = POLICY.clone(max_line_length=_LINE_LIMIT)

_MESSAGE_ID = re.compile(r"<?([!-;=?A-~]+@[!-;=?A-~]+)>?")
_HEADER_URL = re.compile(r"https?://[!-;=?-~]+")
# A Content-ID (RFC 2392 ``cid:`` target): ``local@domain`` of URL-safe characters, so the HTML
# can reference it as it is.
_CONTENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}@[A-Za-z0-9.-]{1,190}")
_FILENAME_BAD = re.compile(r'[\\/"<>]')


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message: ``content_id`` set = an inline part of the HTML (an image
    the HTML shows with ``<img src="cid:CONTENT_ID">``), otherwise a downloadable attachment."""

    filename: str
    content_type: str  # "maintype/subtype"
    data: bytes
    content_id: str | None = None


def check_attachment(attachment: Attachment) -> None:
    """``ValueError`` naming the problem (not the content) when an attachment cannot be sent."""
    name = attachment.filename
    if not name or len(name) > 200 or not name.isprintable() or _FILENAME_BAD.search(name):
        raise ValueError('filename must be 1-200 printable characters without / \\ " < >')
    maintype, slash, subtype = attachment.content_type.partition("/")
    token = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,126}")
    if not slash or not token.fullmatch(maintype) or not token.fullmatch(subtype):
        raise ValueError("content_type must look like 'image/png'")
    if maintype.lower() in ("multipart", "message", "text"):
        raise ValueError("content_type must be a binary type (not text/*, multipart or message)")
    if attachment.content_id is not None:
        if not _CONTENT_ID.fullmatch(attachment.content_id):
            raise ValueError("content_id must look like 'chart1@crm-flows' (no <>, no spaces)")
        if maintype.lower() != "image":
            raise ValueError("an inline part (content_id) must be an image")
    if not isinstance(attachment.data, bytes) or not attachment.data:
        raise ValueError("data must be non-empty bytes")


@lru_cache(maxsize=16)
def _sender_address(sender: str) -> Address:
    # Parsed once per distinct sender (it is a setting) rather than once per message.
    name, addr = parseaddr(sender)
    email, clean_name = validate_address(addr, name)
    username, _, domain = email.rpartition("@")
    return Address(display_name=clean_name, username=username, domain=domain)


def _message_id(message_id: str) -> str:
    match = _MESSAGE_ID.fullmatch(message_id)
    if match is None:
        raise ValueError("message_id must look like <local@domain> (printable ASCII, no spaces)")
    return f"<{match.group(1)}>"


def _transfer_encoding(body: str) -> str:
    """``7bit`` for ASCII whose lines fit RFC 5322's limit, else ``base64`` (compact for CJK, and
    unlike 8bit it needs no 8BITMIME). Chosen here rather than by ``set_content``'s heuristic,
    which trial-encodes the body as quoted-printable in pure Python to compare sizes."""
    if body.isascii() and all(len(line) <= _LINE_LIMIT - 2 for line in body.splitlines()):
        return "7bit"
    return "base64"


def _set_boundaries(message: EmailMessage, message_id: str) -> None:
    """Give every multipart a boundary derived from the Message-ID (public ``set_boundary``).

    The generator would otherwise draw a random one per serialisation. Bodies here are base64,
    quoted-printable or 7bit text rendered by us; the boundary holds ``=_`` and 96 bits of a
    hash the template cannot know, so no body line can equal it."""
    seed = hashlib.sha256(message_id.encode("ascii")).hexdigest()[:24]
    for number, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"==_{seed}_{number}")


def build_message(
    *,
    message_id: str,
    sender: str,
    recipient_email: str,
    recipient_name: str,
    rendered: RenderedEmail,
    date: datetime,
    unsubscribe_url: str | None,
    attachments: Sequence[Attachment] = (),
    reply_to: str | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (text part, then HTML part) ready for SMTP.

    Inline images (attachments with a ``content_id``) make the HTML part a
    ``multipart/related``; other attachments make the whole a ``multipart/mixed``. The same
    arguments always give the same bytes.

    Raises ``InvalidRecipient`` for a bad recipient, ``ValueError`` for a naive ``date``, a
    malformed ``message_id``/``unsubscribe_url``/attachment or a multi-line subject."""
    email, name = validate_address(recipient_email, recipient_name)
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if _has_control(rendered.subject):
        raise ValueError("subject must be a single line (render_email cleans it)")
    for attachment in attachments:
        check_attachment(attachment)
    mid = _message_id(message_id)
    username, _, domain = email.rpartition("@")

    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = clean_subject(rendered.subject)
    msg["From"] = _sender_address(sender)
    msg["To"] = Address(display_name=name, username=username, domain=domain)
    msg["Date"] = date
    msg["Message-ID"] = mid
    if reply_to is not None:  # e.g. the account manager a care email names
        reply_email, _ = validate_address(reply_to)
        reply_user, _, reply_domain = reply_email.rpartition("@")
        msg["Reply-To"] = Address(username=reply_user, domain=reply_domain)
    if unsubscribe_url is not None:
        if not _HEADER_URL.fullmatch(unsubscribe_url) or len(unsubscribe_url) > _LINE_LIMIT - 40:
            raise ValueError("unsubscribe_url must be an http(s) URL of printable ASCII")
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(rendered.text, subtype="plain", cte=_transfer_encoding(rendered.text))
    msg.add_alternative(rendered.html, subtype="html", cte=_transfer_encoding(rendered.html))
    html_part = list(msg.iter_parts())[1]
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if attachment.content_id is not None:
            html_part.add_related(
                attachment.data,
                maintype=maintype,
                subtype=subtype,
                cid=f"<{attachment.content_id}>",
                disposition="inline",
                filename=attachment.filename,
            )
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if attachment.content_id is None:
            msg.add_attachment(
                attachment.data,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
            )
    _set_boundaries(msg, mid)
    return msg


def message_bytes(message: EmailMessage) -> bytes:
    """The message as sent: ``as_bytes`` under ``WIRE_POLICY``."""
    return message.as_bytes(policy=WIRE_POLICY)
