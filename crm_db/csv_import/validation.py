"""Turn a stream of CSV records into validated rows: header check, field counts, duplicates.

Pure: consumes an iterable (the reader) and the lookups, touches no database. Both passes of
an import use ``iter_rows``; only the first pass checks duplicates, which needs the one piece of
state that grows with the file (the natural keys seen so far, with the line of first sight).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.lookups import Lookups
from crm_db.csv_import.reader import CsvRecord
from crm_db.csv_import.spec import KindSpec, check_header

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ValidationSummary:
    rows: int
    errors: int


def iter_rows(
    items: Iterable[CsvRecord | FieldError], spec: KindSpec[Any]
) -> Iterator[Row | FieldError]:
    """Rows as column -> raw string, after the header. Reader errors pass through; a bad header
    ends the stream (rows cannot be read against it). Blank lines, and rows whose every cell is
    empty (spreadsheets export those), are skipped."""
    header: list[str] | None = None
    absent: dict[str, str] = {}
    for item in items:
        if isinstance(item, FieldError):
            yield item
            continue
        if not any(cell.strip() for cell in item.fields):
            continue
        if header is None:
            header_errors = check_header(item.fields, spec, item.line)
            if header_errors:
                yield from header_errors
                return
            header = [name.strip() for name in item.fields]
            # Optional columns the file leaves out read as empty cells.
            absent = {name: "" for name in spec.column_names if name not in header}
            continue
        if len(item.fields) != len(header):
            yield FieldError(
                item.line, "row", f"has {len(item.fields)} fields, the header has {len(header)}"
            )
            continue
        cells = dict(zip(header, item.fields, strict=True))
        yield Row(item.line, {**absent, **cells})
    if header is None:
        yield FieldError(
            1, "file", f"empty file: expected a header line ({', '.join(spec.column_names)})"
        )


def validate_file(
    items: Iterable[CsvRecord | FieldError],
    spec: KindSpec[Any],
    lookups: Lookups,
    on_error: Callable[[FieldError], None],
) -> ValidationSummary:
    """Check every row; report each problem to ``on_error`` in file order."""
    first_seen: dict[tuple[str, ...], int] = {}
    rows = errors = 0
    for item in iter_rows(items, spec):
        if isinstance(item, FieldError):
            errors += 1
            on_error(item)
            continue
        rows += 1
        problems = spec.validate(item.values, item.line, lookups)
        key = spec.natural_key(item.values)
        if key is not None:
            previous = first_seen.setdefault(key, item.line)
            if previous != item.line:
                field = spec.key_columns[0] if len(spec.key_columns) == 1 else "row"
                what = "/".join(spec.key_columns)
                problems = [
                    *(problems if isinstance(problems, list) else []),
                    FieldError(item.line, field, f"duplicate {what} (first on line {previous})"),
                ]
        if isinstance(problems, list):
            errors += len(problems)
            for problem in problems:
                on_error(problem)
    return ValidationSummary(rows=rows, errors=errors)


def iter_records(
    items: Iterable[CsvRecord | FieldError],
    spec: KindSpec[R],
    lookups: Lookups,
) -> Iterator[R]:
    """The typed records of a file that already passed ``validate_file``; any error now means
    the file or the reference data changed in between."""
    for item in iter_rows(items, spec):
        if isinstance(item, FieldError):
            raise InputChanged.from_error(item)
        record = spec.validate(item.values, item.line, lookups)
        if isinstance(record, list):
            raise InputChanged.from_error(record[0])
        yield record


class InputChanged(Exception):
    """The second pass found an error the first did not: the file changed under the import."""

    @classmethod
    def from_error(cls, error: FieldError) -> InputChanged:
        return cls(f"line {error.line}: {error.field}: {error.problem}")
