"""Address validation and MIME assembly for outgoing mail.

Built on the stdlib ``EmailMessage`` with an SMTP policy (CRLF; CR/LF in a header value is
refused) rather than the legacy ``MIMEText`` API, which lets a bare LF through (CVE-2024-6923).
The policy swaps in a few header classes, each for a measured reason:

* correctness: a Subject holding a literal ``=?...?=`` would be decoded by the receiver as an
  RFC 2047 encoded word, the stdlib folder moves a long ASCII subject's first word to a
  continuation line (a leading space on arrival) and breaks long quoted display names; we fold
  those headers ourselves and the round trip is property-tested;
* followability: ``List-Unsubscribe`` is never folded into encoded words (clients would not
  follow it);
* speed: the stdlib builds a header class per header and re-parses/refolds every value
  (~1.7 ms per message with its defaults); caching the classes, writing short ASCII values
  as they are, and composing our own MIME headers brings it to ~0.4 ms (CPU). Further, the
  parse trees our own folders never read are not built, header objects that repeat (From,
  the Date of a batch) and encoded words (CJK names and subjects) are cached, and
  ``message_bytes`` writes each body in one piece instead of line by line: the same bytes as
  ``as_bytes()`` for ~40% less CPU.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import unicodedata
from datetime import datetime
from email.generator import BytesGenerator
from email.header import Header
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    Group,
    HeaderRegistry,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from email.utils import parseaddr
from functools import lru_cache
from io import BytesIO
from typing import Any

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


# Words of RFC 5322 atext separated by single spaces: a display name that needs no quoting.
_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")


class _FastFoldHeader(BaseHeader):
    """Base of every header class: a short, printable-ASCII value is written as it is.

    The stdlib re-parses and refolds every header through ``_refold_parse_tree`` (tens of µs
    each, hundreds for CJK text); for the headers we generate, a value that fits on one line
    needs no folding and no encoding, and the generator's output is the same."""

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if (
            len(self.name) + len(value) + 2 <= (policy.max_line_length or _LINE_LIMIT)
            and value.isascii()
            and value.isprintable()
            and "=?" not in value
        ):
            return f"{self.name}: {value}{policy.linesep}"
        return str(super().fold(policy=policy))


def _encoded_words(text: str, name: str, policy: Policy) -> str:
    return _encoded_words_cached(text, name, policy.max_line_length, policy.linesep)


@lru_cache(maxsize=4096)
def _encoded_words_cached(text: str, name: str, max_line_length: int | None, linesep: str) -> str:
    # email.header.Header splits on character boundaries and picks the shorter of B and Q
    # encoding; ~5x faster than the policy folder for CJK text. Cached: names and subjects
    # repeat across a run (the same customer names, the same subject per kind and locale).
    encoded: str = Header(text, "utf-8", maxlinelen=max_line_length, header_name=name).encode(
        linesep=linesep
    )
    return encoded


def _fold_words(name: str, value: str, policy: Policy) -> str | None:
    """Plain ASCII folded at its single spaces (unfolding gives back the exact text), or None
    when a word is too long for any line. The stdlib folder would put the first word on a
    continuation line, and the receiver would then see a leading space."""
    limit = policy.max_line_length or _LINE_LIMIT
    words = value.split(" ")
    if any(len(word) > _LINE_LIMIT - len(name) - 4 for word in words):
        return None
    lines = [f"{name}: {words[0]}"]
    for word in words[1:]:
        if word and len(lines[-1]) + 1 + len(word) > limit:
            lines.append(f" {word}")
        else:
            lines[-1] += f" {word}"
    return policy.linesep.join(lines) + policy.linesep


class _LiteralSubject(UnstructuredHeader, _FastFoldHeader):
    """Subject text kept literally: no decoding of ``=?..?=`` on the way in; on the way out
    plain ASCII is folded at spaces and anything else (non-ASCII, or a literal ``=?..?=``) is
    sent as RFC 2047 encoded words, so the receiver decodes exactly the text we rendered."""

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        # No parse tree: ``fold`` below never reads one (the stdlib's costs ~15 µs, more for
        # CJK text), and the decoded value is the literal text anyway.
        kwds["parse_tree"] = None
        kwds["decoded"] = value

    def fold(self, *, policy: Policy) -> str:
        value = str(self)
        if value.isascii() and "=?" not in value:
            folded = _fold_words(self.name, value, policy)
            if folded is not None:
                return folded
        return f"{self.name}: {_encoded_words(value, self.name, policy)}{policy.linesep}"


# typeshed types AddressHeader.init and BaseHeader.init differently; the stdlib's own registry
# combines exactly these two classes at runtime.
class _SingleAddress(AddressHeader, _FastFoldHeader):  # type: ignore[misc]
    """From/To holding one address, written by us rather than the stdlib folder, which breaks
    long quoted display names (the address can end up inside the name, or parse as a group).

    A non-ASCII name (or one holding ``=?``) becomes RFC 2047 encoded words; an ASCII name is
    an atom phrase or a quoted string on one line (at most ~650 characters: within the 998
    limit, because names are capped at ``MAX_NAME_LENGTH``)."""

    @classmethod
    def parse(cls, value: Any, kwds: dict[str, Any]) -> None:
        if not isinstance(value, Address):
            super().parse(value, kwds)
            return
        # One Address object (what build_message assigns): the same groups, defects and
        # decoded text as the stdlib, without re-parsing that text into a tree that ``fold``
        # never reads for a single address (~100 us for a CJK name).
        group = Group(None, [value])
        kwds["groups"] = [group]
        kwds["defects"] = []
        kwds["decoded"] = str(group)
        kwds["parse_tree"] = None

    def fold(self, *, policy: Policy) -> str:
        addresses = self.addresses
        if len(addresses) != 1:
            return _FastFoldHeader.fold(self, policy=policy)
        address = addresses[0]
        display = address.display_name
        if not display:
            return f"{self.name}: {address.addr_spec}{policy.linesep}"
        if not display.isascii() or "=?" in display:
            phrase = _encoded_words(display, self.name, policy)
        elif _PHRASE.fullmatch(display):
            phrase = display
        else:
            phrase = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{self.name}: {phrase} <{address.addr_spec}>{policy.linesep}"


class _Verbatim(str):
    """A header value ``build_message`` composed itself from validated pieces (MIME structure,
    Message-ID, List-Unsubscribe): stored and written as it is, skipping the stdlib's parse on
    every assignment and refold on every serialisation. Printable ASCII only, checked here."""

    name: str

    def __new__(cls, value: str) -> _Verbatim:
        if not (value.isascii() and value.isprintable()):
            raise ValueError("a verbatim header value must be printable ASCII on one line")
        return super().__new__(cls, value)

    def fold(self, *, policy: Policy) -> str:
        line = f"{self.name}: {self}"
        if len(line) > (policy.max_line_length or _LINE_LIMIT):
            # Only parameter lists get folded (after "; "); a URL stays whole on its line.
            line = line.replace("; ", f";{policy.linesep} ")
        return line + policy.linesep


class _Policy(EmailPolicy):
    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, _Verbatim):
            header = _Verbatim(value)
            header.name = name
            return name, header
        return super().header_store_parse(name, value)


class _CachedHeaderRegistry(HeaderRegistry):
    """The stdlib registry builds a new header class with ``type()`` on EVERY header it creates
    (~30 µs each, ~30 headers per message); the classes depend only on the name, so cache them."""

    def __init__(self) -> None:
        super().__init__(base_class=_FastFoldHeader)
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        self._classes.pop(name.lower(), None)
        super().map_to_type(name, cls)


def _make_policy() -> _Policy:
    registry = _CachedHeaderRegistry()
    registry.map_to_type("subject", _LiteralSubject)
    registry.map_to_type("from", _SingleAddress)
    registry.map_to_type("to", _SingleAddress)
    return _Policy(linesep="\r\n", header_factory=registry)  # = policy.SMTP + our headers


POLICY = _make_policy()

_MESSAGE_ID = re.compile(r"<?([!-;=?A-~]+@[!-;=?A-~]+)>?")
_HEADER_URL = re.compile(r"https?://[!-;=?-~]+")


def _text_part(body: str, subtype: str) -> EmailMessage:
    """One ``text/*`` part, encoded with C-speed codecs rather than ``set_content`` (which
    reparses each header it writes and tries pure-Python quoted-printable first): ASCII as
    quoted-printable (readable, long lines soft-wrapped), anything else as base64 (compact
    for CJK; unlike 8bit it needs no 8BITMIME from the relay)."""
    # Canonical form for text/* is CRLF line breaks before encoding (RFC 2045 6.8).
    data = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode("utf-8")
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = _Verbatim(f'text/{subtype}; charset="utf-8"')
    if body.isascii():
        part["Content-Transfer-Encoding"] = _Verbatim("quoted-printable")
        part.set_payload(binascii.b2a_qp(data, istext=True).decode("ascii"))
    else:
        part["Content-Transfer-Encoding"] = _Verbatim("base64")
        part.set_payload(base64.encodebytes(data).decode("ascii"))
    return part


def _boundary() -> str:
    # Random, so no body can contain it (base64 and quoted-printable bodies never hold "==_").
    return f"==_{secrets.token_hex(16)}"


@lru_cache(maxsize=16)
def _sender_header(sender: str) -> BaseHeader:
    # Header objects are immutable strings; the policy stores one whose name matches as it is.
    header: BaseHeader = POLICY.header_factory("From", _sender_address(sender))
    return header


@lru_cache(maxsize=16)
def _date_header(date: datetime, tzinfo: Any, fold: int) -> BaseHeader:
    # Every message of a delivery batch carries the same Date: format and parse it once.
    # (tzinfo and fold are in the key: equal instants in other zones print differently.)
    header: BaseHeader = POLICY.header_factory("Date", date)
    return header


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


def build_message(
    *,
    message_id: str,
    sender: str,
    recipient_email: str,
    recipient_name: str,
    rendered: RenderedEmail,
    date: datetime,
    unsubscribe_url: str | None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (text part, then HTML part) ready for SMTP.

    Raises ``InvalidRecipient`` for a bad recipient, ``ValueError`` for a naive ``date``, a
    malformed ``message_id``/``unsubscribe_url`` or a multi-line subject."""
    email, name = validate_address(recipient_email, recipient_name)
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    if _has_control(rendered.subject):
        raise ValueError("subject must be a single line (render_email cleans it)")
    subject = clean_subject(rendered.subject)  # single spaces, no ends: folds back exactly
    username, _, domain = email.rpartition("@")

    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = _sender_header(sender)
    msg["To"] = Address(display_name=name, username=username, domain=domain)
    msg["Date"] = _date_header(date, date.tzinfo, date.fold)
    msg["Message-ID"] = _Verbatim(_message_id(message_id))
    if unsubscribe_url is not None:
        if not _HEADER_URL.fullmatch(unsubscribe_url) or len(unsubscribe_url) > _LINE_LIMIT - 40:
            raise ValueError("unsubscribe_url must be an http(s) URL of printable ASCII")
        msg["List-Unsubscribe"] = _Verbatim(f"<{unsubscribe_url}>")
        msg["List-Unsubscribe-Post"] = _Verbatim("List-Unsubscribe=One-Click")
    text_part = _text_part(rendered.text, "plain")
    html_part = _text_part(rendered.html, "html")
    msg["MIME-Version"] = _Verbatim("1.0")
    msg["Content-Type"] = _Verbatim(f'multipart/alternative; boundary="{_boundary()}"')
    msg.set_payload([text_part, html_part])
    return msg


_NEWLINE = re.compile(r"\r\n|\r|\n")  # email.generator.NLCRE


class _BytesGenerator(BytesGenerator):
    """The stdlib generator, writing a body's lines in one call rather than two per line
    (a 10 kB base64 body is ~300 calls): ``split`` then join with the line separator is
    exactly ``sub``."""

    def _write_lines(self, lines: str) -> None:
        if lines:
            self.write(_NEWLINE.sub(self._NL, lines))  # type: ignore[attr-defined]


def message_bytes(message: EmailMessage) -> bytes:
    """``message.as_bytes()``, byte for byte, for less CPU (see ``_BytesGenerator``)."""
    buffer = BytesIO()
    _BytesGenerator(buffer, mangle_from_=False, policy=message.policy).flatten(
        message, unixfrom=False
    )
    return buffer.getvalue()
