"""What every form our pages take shares (pure): how typed text is stored, and how a field's
problem is reported - a code the page translates and an English message an import prints,
neither repeating what was typed."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Bidi overrides/isolates (spoofing) and the Unicode line separators; other controls are Cc.
_DROPPED_FORMAT = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029\ufeff\u200b"
)
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class FieldProblem:
    """One field's problem: ``code`` is what the page translates (``missing``, ``range``,
    ``too_long``, ``invalid``); ``message`` is the English text the import prints. Neither
    repeats what was typed."""

    field: str
    code: str
    message: str


def normalise_text(value: str) -> str | None:
    """Typed text as stored: NFC, line endings as LF, control and bidi-format characters
    dropped (tabs become spaces), trailing spaces and runs of blank lines trimmed; empty ->
    None. Pages and emails escape it when they show it again; this only makes it tidy and safe
    to print in a log-free report."""
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    if not text.isprintable():
        text = "".join(
            " " if char == "\t" else char
            for char in text
            if char == "\n"
            or char == "\t"
            or (unicodedata.category(char) != "Cc" and char not in _DROPPED_FORMAT)
        )
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text).strip()
    return text or None
