"""The one error type of the importer: a problem with one field of one physical line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """``line`` is the physical line of the file (header = 1) where the record starts; ``field``
    is a column name or one of ``header``, ``row``, ``encoding``, ``file``. ``problem`` never
    repeats the cell's value, so an error report carries no personal data."""

    line: int
    field: str
    problem: str

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line}: {self.field}: {self.problem}"


class CellError(ValueError):
    """Raised by a cell parser; the message is the operator-facing problem text."""
