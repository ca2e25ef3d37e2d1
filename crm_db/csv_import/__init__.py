"""CSV import of customers, transactions, complaints, contacts and targets (``crm import ...``).

Layers: ``kinds/*`` and ``fields`` are pure per-row validators; ``reader`` streams records with
their line numbers; ``validation`` checks a whole stream; ``db_lookups`` and ``writer`` are the
database IO; ``pipeline`` wires them. The column tables come from the specs (``docs``).
"""

from crm_db.csv_import.errors import FieldError
from crm_db.csv_import.kinds import KINDS
from crm_db.csv_import.pipeline import (
    ImportAborted,
    ImportOptions,
    ImportResult,
    UnknownKind,
    import_csv,
)
from crm_db.csv_import.writer import WriteCounts

__all__ = [
    "KINDS",
    "FieldError",
    "ImportAborted",
    "ImportOptions",
    "ImportResult",
    "UnknownKind",
    "WriteCounts",
    "import_csv",
]
