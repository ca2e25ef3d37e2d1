"""Wire one import: load lookups, validate the whole file, then write it in one transaction.

Two streaming passes over the file instead of holding its records: the first validates every row
and reports every error; only when there is none does the second parse the rows again and upsert
them chunk by chunk inside a single transaction, which commits only at the end. A file that
changes between the passes (its SHA-256 differs) rolls the whole write back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from crm_core.masking import mask_text
from crm_db.csv_import.db_lookups import load_lookups
from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.kinds import KINDS
from crm_db.csv_import.lookups import Lookups
from crm_db.csv_import.reader import CsvFile
from crm_db.csv_import.validation import InputChanged, iter_records, validate_file
from crm_db.csv_import.writer import WRITER_FACTORIES, WRITERS, WriteCounts, begin_write
from crm_db.csv_import.xlsx_reader import XLSX_SUFFIXES, XlsxFile

# The kinds read from XLSX as well as CSV (by the file's suffix).
XLSX_KINDS = frozenset({"targets"})

DEFAULT_CHUNK_SIZE = 2_000


@dataclass(frozen=True, slots=True)
class ImportOptions:
    now: datetime  # stamps created_at and status-change events; the limit for future rows
    default_timezone: str  # for empty customer time zones and naive complaint/contact times
    default_locale: str
    allow_test_email_domain: bool = False  # the demo's addresses live at example.test
    chunk_size: int = DEFAULT_CHUNK_SIZE
    dry_run: bool = False  # validate and count, then roll back
    actor: str = "cli"  # who imports (recorded with a target version)
    source_name: str | None = None  # recorded with a target version (default: the file name)


@dataclass(frozen=True, slots=True)
class ImportResult:
    kind: str
    rows: int
    errors: int
    counts: WriteCounts
    written: bool  # False when invalid, empty of rows, or a dry run

    @property
    def ok(self) -> bool:
        return self.errors == 0


class ImportAborted(Exception):
    """Writing failed after validation passed; the transaction was rolled back."""


class UnknownKind(ValueError):
    pass


def import_csv(
    engine: Engine,
    kind: str,
    path: Path,
    options: ImportOptions,
    on_error: Callable[[FieldError], None],
) -> ImportResult:
    """Validate ``path`` as a ``kind`` file and upsert it; errors go to ``on_error`` in file
    order. Raises ``ImportAborted`` when the database (or the file) fails during the write."""
    spec = KINDS.get(kind)
    if spec is None:
        raise UnknownKind(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    with engine.connect() as conn:
        lookups = load_lookups(
            conn,
            spec.needs,
            default_timezone=options.default_timezone,
            default_locale=options.default_locale,
            allow_test_email_domain=options.allow_test_email_domain,
            now=options.now,
        )
    source: CsvFile | XlsxFile
    if path.suffix.lower() in XLSX_SUFFIXES:
        if kind not in XLSX_KINDS:
            on_error(FieldError(1, "file", f"{kind} are imported from CSV only (save as CSV)"))
            return ImportResult(kind, 0, 1, WriteCounts(), written=False)
        source = XlsxFile(path)
    else:
        source = CsvFile(path)
    summary = validate_file(source, spec, lookups, on_error)
    if summary.errors or summary.rows == 0:
        return ImportResult(kind, summary.rows, summary.errors, WriteCounts(), written=False)
    validated_digest = source.digest
    from tasks.complaints.importing import RowsRejected

    try:
        counts = _write(engine, kind, source, lookups, options, validated_digest)
    except RowsRejected as rejected:
        # The database state refuses these rows (e.g. a complaint's recorded history): the
        # transaction rolled back, nothing written.
        for error in rejected.errors:
            on_error(error)
        return ImportResult(kind, summary.rows, len(rejected.errors), WriteCounts(), written=False)
    except InputChanged as exc:
        raise ImportAborted(f"the file changed during the import ({exc}); nothing written") from exc
    except OSError as exc:
        raise ImportAborted(
            f"cannot read the file again ({exc.strerror or type(exc).__name__}); nothing written"
        ) from exc
    except SQLAlchemyError as exc:
        raise ImportAborted(
            f"database error while writing, nothing written: {_describe(exc)}"
        ) from exc
    return ImportResult(kind, summary.rows, 0, counts, written=not options.dry_run)


def _write(
    engine: Engine,
    kind: str,
    source: CsvFile | XlsxFile,
    lookups: Lookups,
    options: ImportOptions,
    validated_digest: str | None,
) -> WriteCounts:
    spec = KINDS[kind]
    factory = WRITER_FACTORIES.get(kind)
    name = options.source_name or source.path.name
    writer = factory(options.actor, name) if factory else WRITERS[kind]
    counts = WriteCounts()
    with engine.connect() as conn, conn.begin() as transaction:
        begin_write(conn)
        chunk: list[Any] = []
        for record in iter_records(source, spec, lookups):
            chunk.append(record)
            if len(chunk) >= options.chunk_size:
                counts += writer(conn, chunk, options.now)
                chunk = []
        if chunk:
            counts += writer(conn, chunk, options.now)
        if source.digest != validated_digest:
            raise InputChanged("its content differs from what was validated")
        if options.dry_run:
            transaction.rollback()
    return counts


def _describe(exc: SQLAlchemyError) -> str:
    """The driver's first line only: SQLAlchemy's full text lists the statement's parameters,
    which are customer data."""
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return f"{type(original).__name__}: {mask_text(first_line)}"
