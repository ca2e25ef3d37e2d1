"""Pure parsers for single CSV cells. Each takes the raw string and returns a typed value or
raises ``CellError`` with the problem in words. Messages never quote the cell: it may hold an
email address, a phone number or a name that was put in the wrong column."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import TypeVar
from zoneinfo import ZoneInfo, available_timezones

from email_validator import EmailNotValidError, validate_email

from crm_db.csv_import.errors import CellError
from crm_db.csv_import.lookups import StaffRef

E = TypeVar("E", bound=StrEnum)
V = TypeVar("V")

MAX_ID_LENGTH = 64  # the external_id columns are String(64)
MIN_YEAR, MAX_YEAR = 1900, 2100  # a guard against typos such as 0226 or 20226

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}:?\d{2})?",
    re.ASCII,  # \d would also match full-width and other Unicode digits
)
_PERIOD = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_DECIMAL = re.compile(r"(\d+)(?:\.(\d+))?", re.ASCII)
_MAX_INTEGER_DIGITS = 15  # keeps every value far inside BIGINT and Decimal's 28-digit context
_PHONE_CHARS = re.compile(r"\+?[0-9 ()\-.]+", re.ASCII)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no", ""})
# Bidi overrides/isolates can make a name display as something else (spoofing); line and
# paragraph separators break lines like LF does.
_FORBIDDEN_FORMAT = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff"
)
_MULTILINE_ALLOWED = frozenset("\n\r\t")


def _bad_character(value: str, allowed: frozenset[str] = frozenset()) -> str | None:
    if value.isprintable():  # fast path: no control, format or line-separator characters
        return None
    for char in value:
        if char in allowed:
            continue
        if unicodedata.category(char) == "Cc" or char in _FORBIDDEN_FORMAT:
            return char
    return None


def _check_characters(value: str, allowed: frozenset[str] = frozenset()) -> None:
    bad = _bad_character(value, allowed)
    if bad is None:
        return
    if bad in "\r\n":
        raise CellError(f"contains a line break (U+{ord(bad):04X})")
    raise CellError(f"contains a control character (U+{ord(bad):04X})")


def required(value: str) -> str:
    value = value.strip()
    if not value:
        raise CellError("is required")
    return value


def identifier(value: str) -> str:
    """An external id or code: required, at most 64 characters, no control characters."""
    value = required(value)
    if len(value) > MAX_ID_LENGTH:
        raise CellError(f"longer than {MAX_ID_LENGTH} characters")
    _check_characters(value)
    return value


def optional_identifier(value: str) -> str | None:
    return identifier(value) if value.strip() else None


def text(value: str, *, max_length: int) -> str:
    """A required single-line text such as a name: no line breaks or control characters."""
    value = required(value)
    if len(value) > max_length:
        raise CellError(f"longer than {max_length} characters")
    _check_characters(value)
    return value


def optional_text(value: str, *, max_length: int) -> str | None:
    return text(value, max_length=max_length) if value.strip() else None


def multiline_text(value: str, *, max_length: int) -> str:
    """Free text that may span lines (a complaint description); empty is allowed."""
    value = value.strip()
    if len(value) > max_length:
        raise CellError(f"longer than {max_length} characters")
    _check_characters(value, _MULTILINE_ALLOWED)
    return value


def email(value: str, *, allow_test_domain: bool = False) -> str | None:
    """Optional; stored in the validator's normalised form (so re-imports compare equal).
    Reserved domains (.test, .local, .invalid, ...) never receive mail and are refused, except
    ``.test`` when ``allow_test_domain`` (the demo, whose mail capture uses example.test)."""
    value = value.strip()
    if not value:
        return None
    try:
        return validate_email(
            value, check_deliverability=False, test_environment=allow_test_domain
        ).normalized
    except EmailNotValidError:
        raise CellError("not a valid email address") from None


def phone(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    digits = sum(char.isdigit() for char in value)
    if len(value) > 40 or not _PHONE_CHARS.fullmatch(value) or not 5 <= digits <= 20:
        raise CellError("not a valid phone number (5-20 digits; only + ( ) - . and spaces besides)")
    return value


def boolean(value: str) -> bool:
    """true/false, 1/0, yes/no in any case; empty means false."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CellError("not a boolean (use true/false, 1/0 or yes/no)")


def choice(value: str, enum_cls: type[E]) -> E:
    value = value.strip()
    if not value:
        raise CellError(f"is required (one of: {', '.join(m.value for m in enum_cls)})")
    try:
        return enum_cls(value)
    except ValueError:
        raise CellError(
            f"unknown value (allowed: {', '.join(m.value for m in enum_cls)})"
        ) from None


def locale(value: str, default: str, allowed: tuple[str, ...] = ("zh-CN", "en")) -> str:
    value = value.strip()
    if not value:
        return default
    if value not in allowed:
        raise CellError(f"unknown locale (allowed: {', '.join(allowed)})")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: str, default: str) -> str:
    value = value.strip()
    if not value:
        return default
    if value not in _zones():
        raise CellError("not an IANA time zone (e.g. Asia/Shanghai)")
    return value


def _checked_date(text_value: str) -> date:
    try:
        day = date.fromisoformat(text_value)
    except ValueError:
        raise CellError("not a calendar date") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise CellError(f"year outside {MIN_YEAR}-{MAX_YEAR}")
    return day


def iso_date(value: str) -> date:
    value = required(value)
    if not _DATE.fullmatch(value):
        raise CellError("not a date (expected YYYY-MM-DD)")
    return _checked_date(value)


def iso_datetime(value: str, default_zone: str) -> datetime:
    """ISO-8601 date and time, with an offset or ``Z``; a naive value is read in
    ``default_zone``. Returned in UTC."""
    value = required(value)
    match = _DATETIME.fullmatch(value)
    if match is None:
        raise CellError(
            "not a date-time (expected YYYY-MM-DDTHH:MM[:SS][+08:00]; no offset = local time)"
        )
    _checked_date(match.group(1))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CellError("not a valid time of day or offset") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(default_zone))
    return moment.astimezone(UTC)


def period(value: str) -> str:
    value = required(value)
    match = _PERIOD.fullmatch(value)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise CellError("not a month (expected YYYY-MM)")
    if not MIN_YEAR <= int(match.group(1)) <= MAX_YEAR:
        raise CellError(f"year outside {MIN_YEAR}-{MAX_YEAR}")
    return value


def scaled_decimal(value: str, *, places: int, what: str) -> int:
    """A non-negative decimal converted exactly to an integer of 10**-places units (CNY -> fen
    with 2 places, litres -> ml with 3). Extra decimals are accepted only if they are zeros,
    because then the conversion is still exact (``12.500`` CNY is 1250 fen)."""
    value = required(value)
    negative = value.startswith("-")
    match = _DECIMAL.fullmatch(value[1:] if negative else value)
    if match is None:
        raise CellError("not a number (digits with an optional decimal point, e.g. 1234.56)")
    number = Decimal(value)
    if negative and number != 0:
        raise CellError("must not be negative")
    if len(match.group(1).lstrip("0")) > _MAX_INTEGER_DIGITS:
        raise CellError("too large")
    scaled = number.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise CellError(f"more than {places} decimal places ({what})")
    return abs(int(scaled))


def count(value: str) -> int:
    value = required(value)
    if value.startswith("-") and value[1:].isdigit():
        raise CellError("must not be negative")
    if not value.isascii() or not value.isdigit():
        raise CellError("not a whole number")
    if len(value.lstrip("0")) > _MAX_INTEGER_DIGITS:
        raise CellError("too large")
    return int(value)


def resolve(value: str, mapping: Mapping[str, V], problem: str) -> V:
    """Map a code or external id to its reference; ``problem`` names what was not found."""
    key = value.strip()
    found = mapping.get(key)
    if found is not None:  # keys come from the database, so they are valid identifiers
        return found
    identifier(key)  # an empty or malformed cell gets that problem rather than "unknown"
    raise CellError(problem)


def active_staff(value: str, staff: Mapping[str, StaffRef], role_name: str) -> int | None:
    """An optional staff reference that must name someone still with the company: giving work
    to a person who left is how customers get lost."""
    if not value.strip():
        return None
    ref = resolve(value, staff, f"unknown {role_name} (no staff with this external id)")
    if not ref.active:
        raise CellError(f"{role_name} has left the company (inactive staff)")
    return ref.id
