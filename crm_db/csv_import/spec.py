"""What a kind of CSV file is: its documented columns, its natural key and its row validator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from crm_core.masking import mask_text
from crm_db.csv_import.errors import CellError, FieldError
from crm_db.csv_import.lookups import LookupName, Lookups

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    required: bool  # may the cell be empty? (every column must be present in the header...)
    description: str
    # ...unless added later as optional: files written before it existed still import, and
    # a row of such a file reads the column as empty.
    header_optional: bool = False


@dataclass(frozen=True)
class KindSpec(Generic[R]):
    """``key_columns`` form the natural key checked for duplicates within one file (on the
    stripped raw strings, so a duplicate is reported even when another cell of it is bad)."""

    name: str
    columns: tuple[Column, ...]
    key_columns: tuple[str, ...]
    needs: frozenset[LookupName]
    validate: Callable[[Mapping[str, str], int, Lookups], R | list[FieldError]]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def natural_key(self, row: Mapping[str, str]) -> tuple[str, ...] | None:
        key = tuple(row[name].strip() for name in self.key_columns)
        return None if any(not part for part in key) else key


class RowChecker:
    """Collects every field problem of one row instead of stopping at the first.

    ``take`` returns the parsed value, or a placeholder when the cell is bad; a validator
    builds its record only when ``errors`` is empty, so a placeholder never escapes."""

    __slots__ = ("_line", "_row", "errors")

    def __init__(self, row: Mapping[str, str], line: int) -> None:
        self._row = row
        self._line = line
        self.errors: list[FieldError] = []

    def take(self, field: str, parse: Callable[[str], T]) -> T:
        try:
            return parse(self._row[field])
        except CellError as exc:
            self.errors.append(FieldError(self._line, field, str(exc)))
            return cast(T, None)

    def fail(self, field: str, problem: str) -> None:
        self.errors.append(FieldError(self._line, field, problem))


def check_header(header: list[str], spec: KindSpec[Any], line: int = 1) -> list[FieldError]:
    """The header must hold every documented column exactly once, in any order."""
    names = [name.strip() for name in header]
    expected = spec.column_names
    if not set(names) & set(expected):
        # Probably a file without a header: its first line is data, so do not echo it.
        return [
            FieldError(
                line,
                "header",
                f"no header line: expected the columns {', '.join(expected)}",
            )
        ]
    errors: list[FieldError] = []
    missing = [
        column.name
        for column in spec.columns
        if column.name not in names and not column.header_optional
    ]
    if missing:
        errors.append(FieldError(line, "header", f"missing required columns: {', '.join(missing)}"))
    unknown = [_shown(name) for name in names if name not in expected]
    if unknown:
        errors.append(
            FieldError(
                line,
                "header",
                f"unknown columns: {', '.join(unknown)} (expected: {', '.join(expected)})",
            )
        )
    duplicated = sorted({name for name in names if name and names.count(name) > 1})
    if duplicated:
        errors.append(FieldError(line, "header", f"duplicate columns: {', '.join(duplicated)}"))
    return errors


def _shown(name: str) -> str:
    """A column name fit for an error line: masked like free text, short, never blank."""
    if not name:
        return "(empty name)"
    masked = mask_text(name)
    return masked if len(masked) <= 40 else masked[:37] + "..."
