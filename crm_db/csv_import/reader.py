"""Stream a CSV file as records tagged with the physical line they start on.

The file is read as bytes and decoded line by line, so a non-UTF-8 byte becomes an error naming
its line and byte offset (and the rest of the file is still checked) instead of a traceback.
A SHA-256 of the bytes read lets the importer notice a file that changed between its passes.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from crm_db.csv_import.errors import FieldError

UTF8_BOM = b"\xef\xbb\xbf"

_CSV_HINTS = {
    "new-line character seen in unquoted field": (
        "a carriage return inside an unquoted field (quote the field, or use LF/CRLF line endings)"
    ),
}


@dataclass(frozen=True, slots=True)
class CsvRecord:
    line: int  # physical line the record starts on (1 = first line of the file)
    fields: list[str]


class CsvFile:
    """Iterate to read the file once more from the start; ``digest`` is set after a full pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest: str | None = None

    def __iter__(self) -> Iterator[CsvRecord | FieldError]:
        self.digest = None
        with self.path.open("rb") as stream:
            yield from self._records(stream)

    def _records(self, stream: BinaryIO) -> Iterator[CsvRecord | FieldError]:
        digest = hashlib.sha256()
        decode_errors: list[FieldError] = []
        reader = csv.reader(_decoded_lines(stream, digest.update, decode_errors), strict=True)
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield from _drain(decode_errors)
                yield FieldError(start, "row", f"malformed CSV: {_explain(exc)}")
                return  # past a broken quote the record boundaries are unknowable
            yield from _drain(decode_errors)
            yield CsvRecord(start, fields)
        yield from _drain(decode_errors)
        self.digest = digest.hexdigest()


def _decoded_lines(
    stream: BinaryIO, update_digest: Callable[[bytes], None], errors: list[FieldError]
) -> Iterator[str]:
    offset = 0
    for number, raw in enumerate(stream, start=1):
        update_digest(raw)
        body = raw[len(UTF8_BOM) :] if number == 1 and raw.startswith(UTF8_BOM) else raw
        skipped = len(raw) - len(body)
        try:
            yield body.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = body[exc.start]
            errors.append(
                FieldError(
                    number,
                    "encoding",
                    f"not UTF-8: invalid byte 0x{bad:02x} at byte offset "
                    f"{offset + skipped + exc.start} of the file (save it as UTF-8)",
                )
            )
            # Keep going with a replacement character so later lines are still checked.
            yield body.decode("utf-8", errors="replace")
        offset += len(raw)


def _drain(errors: list[FieldError]) -> Iterator[FieldError]:
    while errors:
        yield errors.pop(0)


def _explain(exc: csv.Error) -> str:
    message = str(exc)
    for fragment, hint in _CSV_HINTS.items():
        if fragment in message:
            return hint
    return message
